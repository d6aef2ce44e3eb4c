"""Higher-order similarity kernels: naive einsum vs chunked torch (CPU) and fused Triton (GPU).

Run from the repository root::

    .venv/bin/python benchmarks/kernels.py                 # CPU table, + GPU table on CUDA
    .venv/bin/python benchmarks/kernels.py --sizes 128 256 # a quick look
    .venv/bin/python benchmarks/kernels.py --gpu-only      # `make bench-gpu`
    .venv/bin/python benchmarks/kernels.py --threads 1     # on a shared, loaded CPU

Prints markdown tables and writes them to ``benchmarks/results/kernels.md``
(``kernels_gpu.md`` with ``--gpu-only``).

Symile section (issue 17; ``--symile-only`` runs it alone): the whole ``symile``
``n_squared`` loss, ours against the published ``symile`` 0.1.0 package, in one process
with the same inputs (N = 384, M = 3, D = 256, float32, 2 intra-op threads, s = 10),
forward then backward, in alternating rounds; the published package is read from a
temporary folder (``pip install --no-deps --target /tmp/ref_symile symile==0.1.0``), never
installed as a dependency. Peak memory is the largest resident size seen by a sampling
thread (every 0.5 ms) during a call, minus the size before it; before each call
``malloc_trim(0)`` hands the memory glibc keeps from earlier calls back to the OS, so each
call's peak is its own. The same run measures this
machine's float32 matrix-multiply throughput (``torch.mm``) and the one-pass kernel's
achieved FLOP/s (``8 N^3 D``: one product forward, three backward) as a fraction of it.

Workload: Symile's ``n_squared`` normaliser, ``mip_logsumexp(anchor, [b, c], s)`` with
K = 2 and N rows of width D = 256 in each modality (L2-normalised, s = 10), forward then
backward of ``out.sum()``.

CPU: each (path, N) runs in a fresh process; time is the wall time of one forward+backward
(the best of 3 for N <= 256) after a small warm-up call, peak memory the growth of the
process's peak resident size (``ru_maxrss``) during that call. The naive path is
``einsum('id,jd,kd->ijk')`` + ``logsumexp``: in the backward it holds four N^3 tensors and
einsum's N^2 D intermediate; it is skipped where that memory model (``naive_model_bytes``)
says it would not fit in the free memory. "Largest N in 16 GiB" comes from fitting the
measured peaks: ``a N^3 + b N^2 D`` for the naive path, a line through the two largest N
for the chunked one (its boxes hold a constant 4 Mi numbers).

GPU (only with CUDA): the fused Triton kernels, the naive path where it fits and the
chunked torch path, N in {256, 1024, 4096, 8192}, bfloat16 and float32; CUDA-event
times (median of 5 after warm-up), TFLOP/s counting ``2 N^3 D`` for the forward and
``4 x`` that for forward+backward (the backward recomputes the logits and does two more
products of the same size), against the device's dense peak.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

D = 256
SCALE = 10.0
GIB = 2**30
RESULTS = Path(__file__).resolve().parent / "results" / "kernels.md"
#: Dense tensor-core peaks (TFLOP/s) for the GPU table, by device-name substring.
DENSE_PEAK = {
    "H200": {"bf16": 989.0, "fp32": 67.0, "tf32": 494.5},
    "H100": {"bf16": 989.0, "fp32": 67.0, "tf32": 494.5},
    "A100": {"bf16": 312.0, "fp32": 19.5, "tf32": 156.0},
}

# ----------------------------------------------------------------------------- child


def _inputs(n: int, dtype: torch.dtype, device: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(n)
    out = []
    for _ in range(3):
        x = torch.nn.functional.normalize(torch.randn(n, D, generator=gen), dim=1)
        out.append(x.to(device=device, dtype=dtype).requires_grad_())
    return out


def naive_fwd_bwd(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    logits = torch.einsum("id,jd,kd->ijk", a, b, c) * SCALE
    logits.reshape(a.shape[0], -1).logsumexp(dim=1).sum().backward()


def fused_fwd_bwd(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    from anymodal.kernels import mip_logsumexp

    mip_logsumexp(a, [b, c], SCALE).sum().backward()


def child(path: str, n: int, repeats: int, threads: int) -> None:
    """Measure one (path, N) on the CPU and print a JSON line."""
    import resource

    if threads > 0:
        torch.set_num_threads(threads)
    os.environ["ANYMODAL_KERNEL"] = "torch"
    fn = naive_fwd_bwd if path == "naive" else fused_fwd_bwd
    fn(*_inputs(8, torch.float32, "cpu"))  # warm-up: threads, kernels
    tensors = _inputs(n, torch.float32, "cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(repeats):
        for t in tensors:
            t.grad = None
        start = time.perf_counter()
        fn(*tensors)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"time": min(times), "extra": peak - before}))


# ----------------------------------------------------------------------------- CPU


def naive_model_bytes(n: int) -> float:
    """Naive peak, float32: four N^3 tensors alive at once in the backward (the logits, the
    scaled logits that logsumexp saves, the softmax gradient and its scaled copy) and
    einsum's N^2 D intermediate and its gradient."""
    return 4.0 * (4 * n**3 + 2 * n**2 * D)


def available_bytes() -> int:
    text = Path("/proc/meminfo").read_text()
    return int(re.search(r"MemAvailable:\s+(\d+)", text).group(1)) * 1024


def run_child(path: str, n: int, threads: int) -> dict[str, float]:
    repeats = 3 if n <= 256 else 1
    cmd = [sys.executable, __file__, "--child", path, str(n), str(repeats), str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_section(sizes: list[int], threads: int) -> list[str]:
    rows: dict[tuple[str, int], dict[str, float]] = {}
    lines = [
        "## CPU: naive einsum vs chunked torch (K = 2, D = 256, float32, forward+backward)",
        "",
        f"Intra-op threads: {threads if threads > 0 else torch.get_num_threads()}.",
        "",
        "| N | naive time (s) | naive peak (MiB) | chunked time (s) | chunked peak (MiB) "
        "| naive tensor N^3 (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for n in sizes:
        for path in ("naive", "chunked"):
            need = naive_model_bytes(n) if path == "naive" else 0.0
            if need > 0.95 * available_bytes():
                rows[(path, n)] = {"skip": need}
                continue
            rows[(path, n)] = run_child(path, n, threads)
            print(f"  {path} N={n}: {rows[(path, n)]}", file=sys.stderr)
        lines.append(
            f"| {n} | {_cell(rows[('naive', n)], 'time')} | {_cell(rows[('naive', n)], 'extra')} "
            f"| {_cell(rows[('chunked', n)], 'time')} | {_cell(rows[('chunked', n)], 'extra')} "
            f"| {4 * n**3 / 2**20:.0f} |"
        )
    lines += ["", *_capacity(rows, sizes)]
    return lines


def _cell(r: dict[str, float], key: str) -> str:
    if "skip" in r:
        return f"skipped (needs ~{r['skip'] / GIB:.1f} GiB)"
    if "error" in r:
        return f"failed: {r['error'][:60]}"
    return f"{r[key]:.2f}" if key == "time" else f"{r[key] / 2**20:.0f}"


def _capacity(rows: dict[tuple[str, int], dict[str, float]], sizes: list[int]) -> list[str]:
    """Largest N in 16 GiB from the measured peaks, and what the time would be."""
    budget = 16 * GIB
    out = []
    naive = [(n, rows[("naive", n)]["extra"]) for n in sizes if "extra" in rows[("naive", n)]]
    if naive:
        # Least squares on peak = a N^3 + b N^2 D (logits and gradient; einsum's N^2 D).
        x = torch.tensor([[n**3, n**2 * D] for n, _ in naive], dtype=torch.float64)
        y = torch.tensor([p for _, p in naive], dtype=torch.float64)
        a, b = torch.linalg.lstsq(x, y[:, None]).solution[:, 0].tolist()
        fits = [n for n in range(64, 10**5, 8) if a * n**3 + b * n**2 * D <= budget]
        n_max = fits[-1] if fits else 0
        out.append(
            f"- naive: peak ≈ {a:.1f} · N^3 + {b:.1f} · N^2 · D bytes (fit on "
            f"N = {', '.join(str(n) for n, _ in naive)}); largest N in 16 GiB ≈ {n_max}"
        )
    chunked = [(n, rows[("chunked", n)]) for n in sizes if "extra" in rows[("chunked", n)]]
    if len(chunked) >= 2:
        (n1, r1), (n2, r2) = chunked[-2], chunked[-1]
        slope = max((r2["extra"] - r1["extra"]) / (n2 - n1), 1024.0)
        base = r2["extra"] - slope * n2
        rate = r2["time"] / n2**3
        out.append(
            f"- chunked: peak ≈ {r2['extra'] / 2**20:.0f} MiB at N = {n2}, growing by "
            f"≤ {slope / 1024:.0f} KiB per row of N (fit on N = {n1}, {n2}): memory would allow "
            f"N ≈ {(budget - base) / slope:.1e} in 16 GiB, so time is the limit: the cost "
            f"grows as N^3 D, ≈ {rate * 4096**3 / 60:.0f} min at N = 4096 and "
            f"≈ {rate * 8192**3 / 3600:.1f} h at N = 8192 on this CPU (extrapolated)"
        )
    return out


# ----------------------------------------------------------------------------- Symile

SYMILE_N, SYMILE_M = 384, 3


class RssSampler:
    """Largest resident set size seen while a block runs, sampled by a thread."""

    def __init__(self, period: float = 5e-4) -> None:
        self.period = period
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def measure(self, fn: Callable[[], float]) -> tuple[float, float, int, float]:
        """Run ``fn``; returns (its result, wall seconds, peak RSS growth in bytes, process
        CPU seconds, all threads)."""
        import threading

        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # free heap pages back to the OS
        base = self.rss()
        peak = [base]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], self.rss())
                time.sleep(self.period)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        done.set()
        watcher.join()
        peak[0] = max(peak[0], self.rss())
        return result, elapsed, peak[0] - base, cpu


def gemm_flops(shapes: list[tuple[int, int, int]], reps: int = 5) -> dict:
    """Float32 ``torch.mm`` rates per ``(rows, inner, cols)`` shape, best of ``reps``:
    ``(FLOP per wall second, FLOP per process CPU second)``."""
    out = {}
    for rows, inner, cols in shapes:
        a, b = torch.randn(rows, inner), torch.randn(inner, cols)
        a @ b
        best, best_cpu = math.inf, math.inf
        for _ in range(reps):
            start, cpu = time.perf_counter(), time.process_time()
            a @ b
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        flops = 2.0 * rows * inner * cols
        out[(rows, inner, cols)] = (flops / best, flops / max(best_cpu, 1e-9))
    return out


def _symile_calls(ref_path: str) -> dict[str, Callable[[], float]]:
    """The four timed calls on one set of inputs; each returns its loss."""
    sys.path.insert(0, ref_path)
    from symile import Symile  # the published package, from the temporary folder

    from anymodal.kernels import mip_logsumexp, mip_logsumexp_all
    from anymodal.objectives.symile import SymileConfig, SymileLoss

    gen = torch.Generator().manual_seed(0)
    xs = [
        torch.nn.functional.normalize(torch.randn(SYMILE_N, D, generator=gen), dim=1)
        for _ in range(SYMILE_M)
    ]
    xs = [x.requires_grad_() for x in xs]
    ours = SymileLoss(SymileConfig(negatives="n_squared"))

    def fresh() -> None:
        for x in xs:
            x.grad = None

    def run_ours() -> float:
        fresh()
        loss = ours({f"m{i}": x for i, x in enumerate(xs)}, torch.tensor(SCALE))["loss"]
        loss.backward()
        return loss.item()

    def run_ref() -> float:
        fresh()
        loss = Symile("n_squared")(xs, torch.tensor(SCALE))
        loss.backward()
        return loss.item()

    def run_one_pass() -> float:
        fresh()
        total = sum(o.sum() for o in mip_logsumexp_all(xs, SCALE))
        total.backward()
        return total.item()

    def run_per_anchor() -> float:
        fresh()
        total = sum(
            mip_logsumexp(xs[a], [x for j, x in enumerate(xs) if j != a], SCALE).sum()
            for a in range(SYMILE_M)
        )
        total.backward()
        return total.item()

    return {"ours": run_ours, "ref": run_ref, "one_pass": run_one_pass,
            "per_anchor": run_per_anchor}  # fmt: skip


def symile_section(threads: int, rounds: int, ref_path: str) -> list[str]:
    """Ours vs the published symile package, plus the kernel's fraction of GEMM speed."""
    head = [
        f"## Symile n_squared: ours vs the published `symile` 0.1.0 (N = {SYMILE_N}, "
        f"M = {SYMILE_M}, D = {D}, float32, {threads} threads, forward+backward)",
        "",
    ]
    if not (Path(ref_path) / "symile" / "loss.py").exists():
        return [*head, f"Not measured: the published package is not in `{ref_path}` "
                "(`pip install --no-deps --target /tmp/ref_symile symile==0.1.0`)."]  # fmt: skip
    torch.set_num_threads(threads)
    os.environ["ANYMODAL_KERNEL"] = "torch"
    calls, sampler = _symile_calls(ref_path), RssSampler()
    n, flops = SYMILE_N, 8.0 * SYMILE_N**SYMILE_M * D
    shapes = [(2048, 2048, 2048), (4096, D, n)]
    gemm = gemm_flops(shapes)
    runs: dict[str, list[tuple[float, float, int, float]]] = {k: [] for k in calls}
    for r in range(rounds):
        for name, fn in calls.items():
            runs[name].append(sampler.measure(fn))
            print(f"  round {r} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    gemm_after = gemm_flops(shapes)
    # One thread: no OpenMP barrier, so CPU time is compute time for both the kernel and
    # the GEMM (with two threads on a loaded machine a spinning thread waits for its
    # descheduled partner at every op, which costs the kernel's many mid-sized ops more).
    torch.set_num_threads(1)
    gemm_one = max(v[1] for v in gemm_flops(shapes).values())
    one_cpu = min(sampler.measure(calls["one_pass"])[3] for _ in range(2))
    torch.set_num_threads(threads)
    best = {k: min(r[1] for r in v) for k, v in runs.items()}
    best_cpu = {k: min(r[3] for r in v) for k, v in runs.items()}
    peak = {k: max(r[2] for r in v) for k, v in runs.items()}
    loss = {k: v[0][0] for k, v in runs.items()}
    gemm_best = max(v[0] for g in (gemm, gemm_after) for v in g.values())
    gemm_best_cpu = max(v[1] for g in (gemm, gemm_after) for v in g.values())
    labels = {"ours": "anymodal `symile` loss", "ref": "published `symile` loss",
              "one_pass": "kernel alone: `mip_logsumexp_all`, one pass",
              "per_anchor": "kernel alone: `mip_logsumexp` once per anchor"}  # fmt: skip
    lines = [*head, "| call | wall time per round (s) | CPU time per round (s) "
             "| peak memory (MiB) | value |", "|---|---|---|---|---|"]  # fmt: skip
    for k, v in runs.items():
        walls = ", ".join(f"{r[1]:.2f}" for r in v)
        cpus = ", ".join(f"{r[3]:.2f}" for r in v)
        lines.append(f"| {labels[k]} | {walls} | {cpus} | {peak[k] / 2**20:.1f} "
                     f"| {loss[k]:.6f} |")  # fmt: skip
    ratios = ", ".join(f"{r[1] / o[1]:.2f}x" for o, r in zip(runs["ours"], runs["ref"]))
    gemm_cells = "; ".join(
        f"{r}x{i} @ {i}x{c}: {gemm[(r, i, c)][0] / 1e9:.0f} before, "
        f"{gemm_after[(r, i, c)][0] / 1e9:.0f} after"
        for r, i, c in shapes
    )
    lines += [
        "",
        f"- same loss: |ours − published| = {abs(loss['ours'] - loss['ref']):.2e} (target ≤ 1e-4)",
        f"- speed-up of the loss: **{best['ref'] / best['ours']:.2f}x** in wall time, best "
        f"against best (per round: {ratios}), {best_cpu['ref'] / best_cpu['ours']:.2f}x in "
        "CPU time (target ≥ 3x)",
        f"- peak memory: **{peak['ref'] / max(peak['ours'], 1):.0f}x less** "
        f"({peak['ours'] / 2**20:.1f} MiB against {peak['ref'] / 2**20:.0f} MiB; target ≥ 20x)",
        f"- one pass against one call per anchor (kernel alone): "
        f"{best['per_anchor'] / best['one_pass']:.2f}x faster in wall time, "
        f"{best_cpu['per_anchor'] / best_cpu['one_pass']:.2f}x in CPU time "
        f"(M = {SYMILE_M}: 1/M of the work)",
        f"- float32 GEMM on this machine, {threads} threads (GFLOP/s of wall time, `torch.mm`, "
        f"best of 5, before and after the rounds): {gemm_cells}",
        f"- the one-pass kernel counts 8·N^3·D = {flops / 1e9:.0f} GFLOP (one product "
        f"forward, three backward): {flops / best['one_pass'] / 1e9:.1f} GFLOP/s of wall "
        f"time, **{100 * flops / best['one_pass'] / gemm_best:.0f}% of the best GEMM rate**; "
        f"per CPU second {flops / best_cpu['one_pass'] / 1e9:.1f} against the GEMM's "
        f"{gemm_best_cpu / 1e9:.1f}, {100 * flops / best_cpu['one_pass'] / gemm_best_cpu:.0f}% "
        "(CPU time counts the spin-waits of the thread whose partner is descheduled)",
        f"- with 1 thread (no barrier; CPU time, best of 2, after the rounds): the one-pass "
        f"kernel {one_cpu:.2f} s, {flops / one_cpu / 1e9:.1f} GFLOP per CPU second against "
        f"the GEMM's {gemm_one / 1e9:.1f}: **{100 * flops / one_cpu / gemm_one:.0f}% of this "
        "machine's float32 GEMM rate**",
    ]
    os.environ.pop("ANYMODAL_KERNEL", None)
    return lines


# ----------------------------------------------------------------------------- GPU


def _cuda_time(fn: Callable[[], None], reps: int = 5) -> float:
    """Median CUDA-event time of ``fn`` after a warm-up call; once if a call takes > 1 s."""
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    if time.perf_counter() - start > 1.0:
        reps = 1
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return sorted(times)[len(times) // 2]


def _gpu_row(path: str, tensors: list[torch.Tensor], label: str, peak: float | None) -> str:
    """Time one path on CUDA tensors: forward alone, then forward+backward."""
    from anymodal.kernels import mip_logsumexp

    a, b, c = tensors
    n = a.shape[0]
    os.environ["ANYMODAL_KERNEL"] = "torch" if path == "torch" else "auto"

    def fwd() -> None:
        with torch.no_grad():
            if path == "naive":
                logits = torch.einsum("id,jd,kd->ijk", a, b, c) * SCALE
                logits.reshape(n, -1).logsumexp(dim=1)
            else:
                mip_logsumexp(a, [b, c], SCALE)

    def both() -> None:
        for t in tensors:
            t.grad = None
        (naive_fwd_bwd if path == "naive" else fused_fwd_bwd)(a, b, c)

    flops = 2.0 * n**3 * D
    t_f, t_fb = _cuda_time(fwd), _cuda_time(both)
    frac = f"{100 * 4 * flops / t_fb / 1e12 / peak:.0f}%" if peak else "n/a"
    return (
        f"| {label} | {n} | {path} | {1e3 * t_f:.2f} | {1e3 * t_fb:.2f} "
        f"| {flops / t_f / 1e12:.1f} | {4 * flops / t_fb / 1e12:.1f} | {frac} |"
    )


def _gpu_all_row(path: str, tensors: list[torch.Tensor], label: str, peak: float | None) -> str:
    """Every anchor's normaliser at once (M = 3): the one-pass kernel or the naive tensor."""
    from anymodal.kernels import mip_logsumexp_all

    n = tensors[0].shape[0]
    os.environ["ANYMODAL_KERNEL"] = "auto"

    def outputs() -> list[torch.Tensor]:
        if path == "naive-all":
            logits = torch.einsum("id,jd,kd->ijk", *tensors) * SCALE
            return [logits.logsumexp(dim=[j for j in range(3) if j != m]) for m in range(3)]
        return mip_logsumexp_all(tensors, SCALE)

    def fwd() -> None:
        with torch.no_grad():
            outputs()

    def both() -> None:
        for t in tensors:
            t.grad = None
        sum(o.sum() for o in outputs()).backward()

    flops = 2.0 * n**3 * D  # one product forward; the backward three (8 N^3 D in all)
    t_f, t_fb = _cuda_time(fwd), _cuda_time(both)
    frac = f"{100 * 4 * flops / t_fb / 1e12 / peak:.0f}%" if peak else "n/a"
    return (
        f"| {label} | {n} | {path} | {1e3 * t_f:.2f} | {1e3 * t_fb:.2f} "
        f"| {flops / t_f / 1e12:.1f} | {4 * flops / t_fb / 1e12:.1f} | {frac} |"
    )


def gpu_section(sizes: list[int]) -> list[str]:
    name = torch.cuda.get_device_name()
    peaks = next((v for k, v in DENSE_PEAK.items() if k in name), None)
    lines = [
        f"## GPU: {name} (K = 2, D = 256)",
        "",
        "| dtype | N | path | fwd (ms) | fwd+bwd (ms) | fwd TFLOP/s | fwd+bwd TFLOP/s "
        "| % of dense peak (fwd+bwd) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dtype, label in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        peak = peaks[label] if peaks else None
        for n in sizes:
            tensors = _inputs(n, dtype, "cuda")
            for path in ("triton", "naive", "torch", "triton-all", "naive-all"):
                free = torch.cuda.mem_get_info()[0]
                too_big = naive_model_bytes(n) * dtype.itemsize / 4 > 0.8 * free
                if path.startswith("naive") and too_big:
                    lines.append(f"| {label} | {n} | {path} | does not fit | | | | |")
                elif path.endswith("-all"):
                    lines.append(_gpu_all_row(path, tensors, label, peak))
                elif path == "torch" and n > 4096:
                    lines.append(f"| {label} | {n} | torch | not run (minutes a call) | | | | |")
                else:
                    lines.append(_gpu_row(path, tensors, label, peak))
                print(lines[-1], file=sys.stderr)
            del tensors
            torch.cuda.empty_cache()
    os.environ.pop("ANYMODAL_KERNEL", None)
    lines += [
        "",
        "- triton, naive, torch: one anchor's normaliser (`mip_logsumexp`, K = 2); "
        "triton-all, naive-all: the three anchors' at once (`mip_logsumexp_all`, M = 3, "
        "one traversal), the same FLOP count (2 N^3 D forward, 8 N^3 D forward+backward)",
        "- dense peaks used (TFLOP/s): " + (json.dumps(peaks) if peaks else "unknown"),
    ]
    return lines


# ----------------------------------------------------------------------------- main


def machine() -> str:
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = re.search(r"Model name:\s+(.+)", out).group(1).strip()
    except (OSError, AttributeError):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()}-core CPU, {gpu} ({model}); torch {torch.__version__}, "
        f"Python {platform.python_version()}; load average {load:.1f} at start "
        "(the CPU is shared)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--gpu-sizes", type=int, nargs="+", default=[256, 1024, 4096, 8192])
    parser.add_argument("--gpu-only", action="store_true")
    parser.add_argument(
        "--symile-only", action="store_true", help="only the symile section, printed, not saved"
    )
    parser.add_argument("--symile-threads", type=int, default=2)
    parser.add_argument("--symile-rounds", type=int, default=2)
    parser.add_argument("--ref-path", default="/tmp/ref_symile", help="published symile")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads on the CPU (0: torch's default); on a shared, loaded "
        "machine 1 avoids OpenMP waits that slow the chunked path's many mid-sized ops",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), int(args.child[3]))
        return
    lines = [
        "# Kernel benchmarks",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/kernels.py', *sys.argv[1:]])}`",
        f"Date: {datetime.date.today().isoformat()}",
        "",
    ]
    # The CPU table first: its children read their peak from ru_maxrss, which a child
    # inherits from its parent (fork + exec), so the parent must not have grown yet.
    if not args.gpu_only and not args.symile_only:
        lines += [*cpu_section(args.sizes, args.threads), ""]
    if not args.gpu_only:
        lines += [*symile_section(args.symile_threads, args.symile_rounds, args.ref_path), ""]
    if args.symile_only:
        pass
    elif torch.cuda.is_available():
        lines += gpu_section(args.gpu_sizes)
    else:
        lines += ["## GPU", "", "No CUDA device on this machine: the GPU table was not measured."]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    # --gpu-only (make bench-gpu) writes beside the CPU results instead of over them.
    target = RESULTS.with_name("kernels_gpu.md") if args.gpu_only else RESULTS
    if args.symile_only:  # a quick look: the results file keeps every section
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


if __name__ == "__main__":
    main()
