"""Retrieval benchmark on hard corpora: exact search vs IVF-Flat, HNSW and IVF-PQ (re-ranked).

For each corpus family of :mod:`retrieval_corpora` (real digit images projected to 256-d,
and a heavily overlapping Gaussian mixture) at each N (default 100k and 1M, D = 256), it
builds every backend through :class:`anymodal.Index`, tunes each approximate one with
``Index.tune(target_recall=0.95)`` on 500 held-out *tuning* queries, then measures on 500
other held-out *test* queries: recall@10 (overlap with the exact top-10, i.e.
``|approx ∩ exact| / 10``), batch QPS (all test queries in one call), single-query QPS
(queries one at a time), build time and memory, and a recall-QPS curve over the swept
setting. Then Symile tuple search, ``mip_topk`` against the naive product table.

Every row is appended to ``benchmarks/results/retrieval.jsonl`` as it is measured, and the
page (``retrieval.md``) and plot (``retrieval.png``) are written from that file, so that
``--report-only`` redraws them without measuring again.

    .venv/bin/python benchmarks/retrieval.py      # the full run (about an hour on 2 cores)
    .venv/bin/python benchmarks/retrieval.py --sizes 20000 --output-dir /tmp/rb   # quick
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from retrieval_corpora import CORPORA
from retrieval_report import write_report

from anymodal.kernels import DEFAULT_CHUNK_ELEMENTS, mip_topk
from anymodal.retrieval.index import Index
from anymodal.retrieval.metrics import neighbour_recall
from anymodal.retrieval.tune import sweep_values

RESULTS = Path(__file__).parent / "results"
BACKEND_OPTIONS: dict[str, dict[str, Any]] = {
    "ivf": {}, "ivfpq": {}, "hnsw": {"hnsw_m": 16, "ef_construction": 40}}


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        model = next((ln.split(":", 1)[1].strip() for ln in lines
                      if ln.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{torch.get_num_threads()}-core CPU ({model}), {gpu}"


def same_threads() -> int:
    """Give FAISS (OpenMP) as many threads as torch: ANN and exact search use the same
    cores, so that their QPS ratio compares methods, not thread counts."""
    import faiss

    threads = torch.get_num_threads()
    faiss.omp_set_num_threads(threads)
    return threads


def load_average() -> float:
    """The 1-minute load average (runnable jobs on the machine's cores)."""
    return round(os.getloadavg()[0], 1)


def rss_mb() -> float:
    """Resident set size of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_time(fn: Callable[[], Any], reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed_search(search: Callable[[torch.Tensor], torch.Tensor], queries: torch.Tensor,
                 singles: int) -> tuple[torch.Tensor, float, float]:
    """``(found, batch QPS, single-query QPS)``: one batch call, then ``singles`` calls of
    one query each (the first ``singles`` queries)."""
    t0 = time.perf_counter()
    found = search(queries)
    batch = len(queries) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for row in range(singles):
        search(queries[row:row + 1])
    single = singles / (time.perf_counter() - t0)
    return found, batch, single


def bench_exact(corpus: torch.Tensor, queries: torch.Tensor, k: int, singles: int
                ) -> tuple[dict[str, Any], torch.Tensor]:
    gc.collect()
    before, t0 = rss_mb(), time.perf_counter()
    index = Index(corpus, modality="x")
    build = time.perf_counter() - t0
    memory = rss_mb() - before
    truth, qps, single = timed_search(
        lambda q: index.exact_topk(lambda chunk: q @ chunk.T, k)[1], queries, singles)
    # The ids: one str each, the list and the id -> row dict (Python objects, not tensors).
    ids_bytes = (sum(sys.getsizeof(i) for i in index.ids) + sys.getsizeof(index.ids)
                 + sys.getsizeof(index._rows)) / len(index)
    return {"backend": "exact", "build_s": build, "memory_mb": memory, "faiss_mb": 0.0,
            "ids_bytes_per_row": ids_bytes,
            "recall": 1.0, "qps": qps, "single_qps": single, "settings": {},
            "options": {"chunk_size": index.chunk_size}, "curve": []}, truth


def curve(index: Index, queries: torch.Tensor, truth: torch.Tensor, k: int,
          fixed: dict[str, int], exact_qps: float) -> list[dict[str, Any]]:
    """Recall and batch QPS on the test queries along the backend's main setting."""
    values = sweep_values(index, k)
    main = "ef_search" if "ef_search" in values else "nprobe"
    points = []
    for value in values[main]:
        setattr(index.faiss_options, main, value)
        for name, fixed_value in fixed.items():
            setattr(index.faiss_options, name, fixed_value)
        t0 = time.perf_counter()
        _, found = index.faiss_topk(queries, k)
        qps = len(queries) / (time.perf_counter() - t0)
        points.append({main: value, **fixed, "recall": neighbour_recall(found, truth),
                       "qps": qps})
        if points[-1]["recall"] >= 0.995 or qps < exact_qps / 2:
            break
    return points


def bench_backend(corpus: torch.Tensor, tune_q: torch.Tensor, test_q: torch.Tensor,
                  truth: torch.Tensor, backend: str, k: int, singles: int, exact_qps: float,
                  target: float) -> dict[str, Any]:
    """Build, tune on the tuning queries, measure on the test queries; one result row."""
    options = dict(BACKEND_OPTIONS[backend])
    gc.collect()
    before, t0 = rss_mb(), time.perf_counter()
    index = Index(corpus, modality="x", backend=backend, **options)
    index.build_faiss()
    build = time.perf_counter() - t0
    memory = rss_mb() - before
    assert index._faiss is not None
    faiss_mb = index._faiss.memory_bytes() / 2**20
    t0 = time.perf_counter()
    tuned = index.tune(tune_q, target_recall=target, k=k)
    tune_s = time.perf_counter() - t0
    found, qps, single = timed_search(lambda q: index.faiss_topk(q, k)[1], test_q, singles)
    row = {"backend": backend, "build_s": build, "memory_mb": memory, "faiss_mb": faiss_mb,
           "recall": neighbour_recall(found, truth), "qps": qps, "single_qps": single,
           "settings": tuned.settings, "tune": {**tuned.to_dict(), "seconds": tune_s,
                                                "points": [vars(p) for p in tuned.points]},
           "options": {k_: v for k_, v in index.faiss_options.to_dict().items()
                       if k_ not in ("tuned", "kind")},
           "nlist": int(getattr(index._faiss.index, "nlist", 0)),
           "quantizer": quantizer_name(index)}
    fixed = {"refine": tuned.settings["refine"]} if "refine" in tuned.settings else {}
    row["curve"] = curve(index, test_q, truth, k, fixed, exact_qps)
    return row


def quantizer_name(index: Index) -> str | None:
    """``hnsw`` or ``flat``: how an IVF index finds a query's cells (None: not IVF)."""
    searcher = index._faiss
    if searcher is None or not hasattr(searcher.index, "quantizer"):
        return None
    quantizer = searcher.faiss.downcast_index(searcher.index.quantizer)
    return "hnsw" if isinstance(quantizer, searcher.faiss.IndexHNSW) else "flat"


def hnsw_predicted(rates: list[float], n: int) -> float:
    """Predicted HNSW build seconds: about N log N, from the previous build's rate."""
    return rates[-1] * n * math.log(n) if rates else 0.0


def bench_corpus(name: str, n: int, args: argparse.Namespace, rates: dict[str, list[float]],
                 emit: Callable[[dict[str, Any]], None]) -> None:
    corpus, queries = CORPORA[name](n, 2 * args.queries, dim=args.dim)
    tune_q, test_q = queries[:args.queries], queries[args.queries:]
    base = {"corpus": name, "n": n, "dim": args.dim, "queries": args.queries, "k": args.k}
    row, truth = bench_exact(corpus, test_q, args.k, args.singles)
    exact_qps = row["qps"]
    emit({**base, **row})
    for backend in args.backends.split(","):
        predicted = hnsw_predicted(rates[name], n) if backend == "hnsw" else 0.0
        if predicted > args.hnsw_budget:
            emit({**base, "backend": backend, "skipped": f"predicted build {predicted:.0f} s "
                  f"> budget {args.hnsw_budget:.0f} s", "options": BACKEND_OPTIONS[backend]})
            continue
        row = bench_backend(corpus, tune_q, test_q, truth, backend, args.k, args.singles,
                            exact_qps, args.target)
        if backend == "hnsw":
            rates[name].append(row["build_s"] / (n * math.log(n)))
        emit({**base, **row})


class Emitter:
    """Appends each row to the JSONL file (as soon as it is measured) and prints it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, row: dict[str, Any]) -> None:
        row = {**row, "load": load_average()}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        short = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                 if k not in ("curve", "tune", "options")}
        print(short, flush=True)


def bench_tuples(size: int, dim: int, n_queries: int, k: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(4)
    a = torch.nn.functional.normalize(torch.randn(size, dim, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(size, dim, generator=g), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(n_queries, dim, generator=g), dim=-1)

    def naive() -> tuple[torch.Tensor, torch.Tensor]:
        table = torch.einsum("qd,id,jd->qij", q, a, b)  # [Q, A, B], materialised
        return table.reshape(n_queries, -1).topk(k, dim=1)

    fused_s = median_time(lambda: mip_topk(q, [a, b], k), 3)
    naive_s = median_time(naive, 3)
    values, _ = mip_topk(q, [a, b], k)
    want, _ = naive()
    return {"tuples": True, "size": size, "queries": n_queries, "k": k,
            "mip_topk_s": fused_s, "naive_s": naive_s,
            "naive_table_mb": n_queries * size * size * 4 / 2**20,
            "block_mb": DEFAULT_CHUNK_ELEMENTS * 4 / 2**20,
            "max_abs_diff": float((values - want).abs().max())}


def parse() -> tuple[argparse.Namespace, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--corpora", default="digits,mixture")
    parser.add_argument("--backends", default="ivf,ivfpq,hnsw")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=500,
                        help="tuning queries, and as many test queries")
    parser.add_argument("--singles", type=int, default=50, help="one-query searches timed")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.95, help="recall@k tune aims at")
    parser.add_argument("--hnsw-budget", type=float, default=900.0,
                        help="seconds an HNSW build may take (predicted); larger are skipped")
    parser.add_argument("--tuple-size", type=int, default=2000)
    parser.add_argument("--tuple-queries", type=int, default=16)
    parser.add_argument("--output-dir", default=str(RESULTS))
    parser.add_argument("--append", action="store_true",
                        help="add rows to retrieval.jsonl instead of starting it afresh")
    parser.add_argument("--note", action="append", default=[],
                        help="a remark for the page (repeatable)")
    parser.add_argument("--report-only", action="store_true",
                        help="only redraw the page and plot from retrieval.jsonl")
    args = parser.parse_args()
    command = "python benchmarks/retrieval.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v != parser.get_default(k) and k not in ("report_only", "append", "output_dir",
                                                     "note"))
    return args, command


def main() -> None:
    args, command = parse()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "retrieval.jsonl"
    if not args.report_only:
        torch.manual_seed(0)
        threads = same_threads()
        header = json.dumps({"machine": machine(), "command": command, "threads": threads,
                             "load": load_average(),
                             "torch": torch.__version__, "faiss": __import__("faiss").__version__,
                             "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        if args.append and raw.exists():
            with raw.open("a") as f:
                f.write(header + "\n")
        else:
            raw.write_text(header + "\n")
        emit = Emitter(raw)
        started = time.perf_counter()
        rates: dict[str, list[float]] = {name: [] for name in CORPORA}
        for n in (int(s) for s in args.sizes.split(",")):
            for name in args.corpora.split(","):
                bench_corpus(name, n, args, rates, emit)
        if args.tuple_size:
            emit(bench_tuples(args.tuple_size, args.dim, args.tuple_queries, args.k))
        emit({"elapsed_s": time.perf_counter() - started})
    with raw.open("a") as f:
        for note in args.note:
            f.write(json.dumps({"note": note}) + "\n")
    text = write_report(raw, out / "retrieval.md", out / "retrieval.png")
    print(text)


if __name__ == "__main__":
    main()
