"""Retrieval benchmark: exact chunked torch search vs FAISS (flat, IVF, HNSW), and tuple search.

For N = 10k, 100k, 1M vectors of D = 256 it measures, through :class:`anymodal.Index`:
build time, the memory the build added (resident set), the latency of one query, the
throughput of a batch of queries (QPS), and recall@10 against the exact top-10. Then
Symile tuple search, ``mip_topk`` against the naive product table, at A = B = 2,000.

The corpus is clustered (4,096 Gaussian clusters on the sphere, the shape of real
embeddings; uniform random vectors in 256-D are the worst case for IVF/HNSW) and the
queries are fresh draws from the same clusters.

    .venv/bin/python benchmarks/retrieval.py            # writes benchmarks/results/retrieval.md
    .venv/bin/python benchmarks/retrieval.py --sizes 10000 --output /tmp/r.md   # quick
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from anymodal.kernels import mip_topk
from anymodal.kernels import DEFAULT_CHUNK_ELEMENTS
from anymodal.retrieval.index import Index

RESULTS = Path(__file__).parent / "results" / "retrieval.md"


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        model = next((ln.split(":", 1)[1].strip() for ln in lines
                      if ln.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{torch.get_num_threads()}-core CPU ({model}), {gpu}"


def rss_mb() -> float:
    """Resident set size of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clustered(n: int, dim: int, seed: int, centres: torch.Tensor) -> torch.Tensor:
    """``n`` unit vectors: a random centre plus Gaussian noise, normalised.

    Shapes:
        centres: ``[K, dim]``; returns ``[n, dim]``.
    """
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, dim)
    for start in range(0, n, 100_000):  # in blocks, to bound the temporaries
        m = min(100_000, n - start)
        pick = torch.randint(len(centres), (m,), generator=g)
        noise = torch.randn(m, dim, generator=g) * (0.6 / math.sqrt(dim))
        out[start:start + m] = torch.nn.functional.normalize(centres[pick] + noise, dim=-1)
    return out


def median_time(fn: Callable[[], Any], reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def recall(got: torch.Tensor, truth: torch.Tensor) -> float:
    hits = sum(len(set(g.tolist()) & set(t.tolist())) for g, t in zip(got, truth))
    return hits / truth.numel()


def bench_backend(corpus: torch.Tensor, queries: torch.Tensor, backend: str, k: int,
                  truth: torch.Tensor | None, reps: int, **options: Any) -> dict[str, Any]:
    """Build an index with ``backend`` and time it; returns one table row."""
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    index = Index(corpus, modality="x", backend=backend, **options)
    if backend != "exact":
        index.build_faiss()
    build = time.perf_counter() - t0
    memory = rss_mb() - before
    if backend == "exact":
        def run(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return index.exact_topk(lambda chunk: q @ chunk.T, k)
    else:
        def run(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return index.faiss_topk(q, k)
    latency = median_time(lambda: run(queries[:1]), reps)
    t0 = time.perf_counter()
    _, found = run(queries)  # one batch (the index is warm from the single queries)
    batch = time.perf_counter() - t0
    return {"backend": backend, "build_s": build, "memory_mb": memory,
            "latency_ms": latency * 1000, "qps": len(queries) / batch,
            "recall": 1.0 if truth is None else recall(found, truth), "options": options}


def bench_corpus(n: int, dim: int, n_queries: int, k: int, hnsw_budget: float,
                 hnsw_rate: list[float]) -> list[dict[str, Any]]:
    centres = torch.nn.functional.normalize(
        torch.randn(4096, dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    corpus = clustered(n, dim, 2, centres)
    queries = clustered(n_queries, dim, 3, centres)
    reps = 20 if n <= 100_000 else 7
    rows = [bench_backend(corpus, queries, "exact", k, None, reps)]
    truth = Index(corpus, modality="x").exact_topk(lambda c: queries @ c.T, k)[1]
    rows.append(bench_backend(corpus, queries, "flat", k, truth, reps))
    rows.append(bench_backend(corpus, queries, "ivf", k, truth, reps, nprobe=16))
    hnsw = {"hnsw_m": 32, "ef_construction": 40, "ef_search": 64}
    # HNSW builds in about N log N; predict from the smaller sizes and skip if too slow.
    predicted = hnsw_rate[-1] * n * math.log(n) if hnsw_rate else 0.0
    if predicted > hnsw_budget:
        # Half the links and a shorter build list: a build about 0.7x as long (measured
        # here at 1M), a weaker graph that a longer search list partly makes up for.
        hnsw = {"hnsw_m": 16, "ef_construction": 24, "ef_search": 128}
        predicted *= 0.7
    if predicted > hnsw_budget:
        rows.append({"backend": "hnsw", "skipped": f"predicted build {predicted:.0f} s > "
                     f"budget {hnsw_budget:.0f} s on this CPU", "options": hnsw})
    else:
        row = bench_backend(corpus, queries, "hnsw", k, truth, reps, **hnsw)
        hnsw_rate.append(row["build_s"] / (n * math.log(n)))
        rows.append(row)
    for row in rows:
        row["n"] = n
    return rows


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
    return {"size": size, "queries": n_queries, "k": k, "mip_topk_s": fused_s,
            "naive_s": naive_s, "naive_table_mb": n_queries * size * size * 4 / 2**20,
            "block_mb": DEFAULT_CHUNK_ELEMENTS * 4 / 2**20,
            "max_abs_diff": float((values - want).abs().max())}


def markdown(rows: list[dict[str, Any]], tuples: dict[str, Any], args: argparse.Namespace,
             command: str, elapsed: float) -> str:
    lines = [
        "# Retrieval benchmark",
        "",
        f"Machine: {machine()}. torch {torch.__version__}, faiss "
        f"{__import__('faiss').__version__}, {torch.get_num_threads()} threads.",
        f"Command: `{command}` ({elapsed:.0f} s in all).",
        "",
        f"Corpus: N clustered unit vectors of D = {args.dim} (4,096 clusters); "
        f"{args.queries} queries from the same clusters; top-{args.k} by inner product. "
        "Build: making the `Index` (normalising a copy) plus, for FAISS, building its index "
        "(IVF: k-means on a 64k sample, then assignment). Memory: resident-set growth during "
        "the build (the embeddings alone are N x D x 4 bytes). Latency: one query, median. "
        f"QPS: a batch of {args.queries} queries. Recall@{args.k}: against the exact top-"
        f"{args.k}.",
        "",
        "| N | backend | parameters | build (s) | memory (MB) | latency (ms) | QPS | "
        f"recall@{args.k} |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or (
            "chunks of 65,536" if r["backend"] == "exact" else "-")
        if "skipped" in r:
            lines.append(f"| {r['n']:,} | {r['backend']} | {params} | skipped: {r['skipped']}"
                         " | | | | |")
            continue
        lines.append(f"| {r['n']:,} | {r['backend']} | {params} | {r['build_s']:.2f} | "
                     f"{r['memory_mb']:.0f} | {r['latency_ms']:.2f} | {r['qps']:,.0f} | "
                     f"{r['recall']:.3f} |")
    t = tuples
    largest = max((r for r in rows if "skipped" not in r), key=lambda r: r["n"])
    by_backend = {r["backend"]: r for r in rows if r["n"] == largest["n"] and "qps" in r}
    flat_ratio = by_backend["flat"]["qps"] / by_backend["exact"]["qps"]
    lines += [
        "",
        f"Symile tuple search: {t['queries']} queries against every (a, b) pair of two sets of "
        f"A = B = {t['size']:,} vectors (D = {args.dim}, {t['size'] ** 2:,} tuples per "
        f"query), top-{t['k']}.",
        "",
        "| method | time (s) | largest temporary |",
        "|---|---:|---:|",
        f"| `mip_topk` (chunked torch, running top-k) | {t['mip_topk_s']:.3f} | "
        f"{t['block_mb']:.0f} MB (one block of {DEFAULT_CHUNK_ELEMENTS:,} scores), "
        "whatever Q, A, B |",
        f"| naive product table + topk | {t['naive_s']:.3f} | {t['naive_table_mb']:,.0f} MB "
        "(Q x A x B, grows with each) |",
        "",
        f"Largest difference between the two top-k values: {t['max_abs_diff']:.2e}.",
        "",
        "Notes:",
        "",
        "- A FAISS backend keeps the vectors twice (the `Index`'s own float32 copy, used for "
        "exact re-scoring with the objective and for saving, and FAISS's): hence about 2x the "
        "memory of `exact`.",
        "- IVF uses nlist = min(1024, 4 sqrt(N)) cells, at most N/39 (256 at 10k): with "
        "nprobe = 16 it visits 6% of the cells at 10k, which is why its recall is low there; "
        "raise `nprobe` (or use `exact`) for small corpora.",
        f"- At N = {largest['n']:,}, FAISS `flat` answers a batch at {flat_ratio:.2f}x the "
        "rate of the torch `exact` path (the same arithmetic: a matrix product and a top-k).",
        "- HNSW build time grows as N log N: the script predicts each build from the previous "
        f"size; above the `--hnsw-budget` ({args.hnsw_budget:.0f} s) it builds with M = 16, "
        "efConstruction = 24 (efSearch = 128) instead, and skips the size if even that is "
        "predicted over budget. The prediction depends on how busy the shared CPU is.",
        f"- `mip_topk` took {t['mip_topk_s'] / t['naive_s']:.2f}x the naive time here: on "
        "the CPU its chunked path does the same multiply-adds as the naive table plus a "
        "running top-k per block; what it buys is memory bounded by one block (the naive "
        f"table for 256 queries would be {256 * t['size'] ** 2 * 4 / 2**30:.1f} GiB). On "
        "CUDA it runs a fused Triton kernel.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--hnsw-budget", type=float, default=180.0,
                        help="seconds an HNSW build may take; larger ones are skipped")
    parser.add_argument("--tuple-size", type=int, default=2000)
    parser.add_argument("--tuple-queries", type=int, default=16)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    command = "python benchmarks/retrieval.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v != parser.get_default(k))
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    hnsw_rate: list[float] = []
    for n in (int(s) for s in args.sizes.split(",")):
        for row in bench_corpus(n, args.dim, args.queries, args.k, args.hnsw_budget, hnsw_rate):
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                  flush=True)
    tuples = bench_tuples(args.tuple_size, args.dim, args.tuple_queries, args.k)
    print(tuples, flush=True)
    text = markdown(rows, tuples, args, command, time.perf_counter() - started)
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
