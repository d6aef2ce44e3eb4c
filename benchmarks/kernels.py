"""Higher-order similarity kernels: naive einsum vs chunked torch (CPU) and fused Triton (GPU).

Run from the repository root::

    .venv/bin/python benchmarks/kernels.py                 # CPU table, + GPU table on CUDA
    .venv/bin/python benchmarks/kernels.py --sizes 128 256 # a quick look
    .venv/bin/python benchmarks/kernels.py --gpu-only      # `make bench-gpu`
    .venv/bin/python benchmarks/kernels.py --threads 1     # on a shared, loaded CPU

Prints markdown tables and writes them to ``benchmarks/results/kernels.md``
(``kernels_gpu.md`` with ``--gpu-only``).

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
import datetime
import json
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
            for path in ("triton", "naive", "torch"):
                free = torch.cuda.mem_get_info()[0]
                if path == "naive" and naive_model_bytes(n) * dtype.itemsize / 4 > 0.8 * free:
                    lines.append(f"| {label} | {n} | naive | does not fit | | | | |")
                elif path == "torch" and n > 4096:
                    lines.append(f"| {label} | {n} | torch | not run (minutes a call) | | | | |")
                else:
                    lines.append(_gpu_row(path, tensors, label, peak))
                print(lines[-1], file=sys.stderr)
            del tensors
            torch.cuda.empty_cache()
    os.environ.pop("ANYMODAL_KERNEL", None)
    lines += ["", "- dense peaks used (TFLOP/s): " + (json.dumps(peaks) if peaks else "unknown")]
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
    if not args.gpu_only:
        lines += [*cpu_section(args.sizes, args.threads), ""]
    if torch.cuda.is_available():
        lines += gpu_section(args.gpu_sizes)
    else:
        lines += ["## GPU", "", "No CUDA device on this machine: the GPU table was not measured."]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    # --gpu-only (make bench-gpu) writes beside the CPU results instead of over them.
    target = RESULTS.with_name("kernels_gpu.md") if args.gpu_only else RESULTS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


if __name__ == "__main__":
    main()
