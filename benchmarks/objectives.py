"""Forward+backward time and peak memory of every objective, and GRAM's determinant.

Run from the repository root::

    .venv/bin/python benchmarks/objectives.py            # N in {64, 256, 1024}, M in {2, 3, 4}
    .venv/bin/python benchmarks/objectives.py --sizes 64  # a quick look

Prints markdown tables and writes them to ``benchmarks/results/objectives.md``.

Time: the best of up to 5 calls of ``objective(emb, s)["loss"].backward()`` on float32
inputs of width D = 256, after one warm-up call (a call over 3 s is timed once). By
default the process CPU time with one torch thread: on a shared machine (other jobs
running) wall-clock figures swing by several times, while the CPU time a call consumes
stays put. ``--threads 2 --clock wall`` gives wall time on a quiet machine.

Memory: the peak resident-set growth during one (warm) call, ``VmHWM - VmRSS`` from
``/proc/self/status`` after resetting the high-water mark through ``/proc/self/clear_refs``
(Linux). It is measured in a child process in which glibc returns every block over
64 KiB to the OS when it is freed (``mallopt(M_MMAP_THRESHOLD)``), so that RSS follows
the live tensors (autograd's saved tensors included, not the inputs). That setting
makes allocations slower, hence the separate process: it never touches the timings.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import anymodal
from anymodal.objectives.volume import gram_volume, volume_torch_det

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
from study_common import SHARED_OBJECTIVES  # noqa: E402  (the examples folder, on the path above)

D = 256
SCALE = 10.0
SLOW_CALL_S = 3.0
# Symile n_squared sums over N^M (anchor row, tuple) pairs per anchor; past this many the
# chunked CPU kernel takes minutes, so those sizes are skipped (and say so).
MAX_N_SQUARED_TERMS = 2**24

OBJECTIVES: list[tuple[str, str, dict]] = [
    ("clip", "clip", {}),
    *SHARED_OBJECTIVES,
    ("cloob (hopfield)", "infoloob", {"hopfield_beta": 14.3}),
    ("dclw", "dcl", {"weighted": True}),
    ("clip (HCL+LLaVE)", "clip", {"hard_negative_beta": 0.5, "hard_negative_alpha": 2.0}),
]
GRAM_COLUMNS = ("V: closed form", "V: torch.det", "whole loss: closed form",
                "whole loss: torch.det")


@dataclass(frozen=True)
class Cell:
    """One measurement: an objective at (M, N), or one GRAM column at (k, N)."""

    key: str
    build: Callable[[], Callable[[], None]]
    skip: str | None = None


# ----------------------------------------------------------------------------- calls


def _inputs(m: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(m):
        x = torch.nn.functional.normalize(torch.randn(n, D, generator=generator), dim=-1)
        out.append(x.requires_grad_())
    return out


def _clear(tensors: list[torch.Tensor]) -> None:
    for x in tensors:
        x.grad = None


def objective_call(name: str, params: dict, m: int, n: int) -> Callable[[], None]:
    """Forward+backward of the registered objective on fixed random inputs."""
    return _loss_call(anymodal.create_objective(name, **params), m, n)


def _loss_call(objective: torch.nn.Module, m: int, n: int) -> Callable[[], None]:
    """Forward+backward of ``objective`` on ``m`` fixed random inputs of ``n`` rows."""
    tensors = _inputs(m, n)
    emb = {f"m{k}": x for k, x in enumerate(tensors)}
    scale = torch.tensor(SCALE, requires_grad=True)

    def call() -> None:
        _clear(tensors)
        objective(emb, scale)["loss"].backward()

    return call


def gram_call(column: str, k: int, n: int) -> Callable[[], None]:
    """One column of the GRAM table: V alone or the whole loss, closed form or torch.det."""
    volume_fn = volume_torch_det if column.endswith("torch.det") else gram_volume
    if column.startswith("whole loss"):
        objective = anymodal.create_objective("gram")
        objective.volume_fn = volume_fn
        return _loss_call(objective, k, n)
    anchor, *others = _inputs(k, n)

    def call_volume() -> None:
        _clear([anchor, *others])
        volume_fn(anchor, others).sum().backward()

    return call_volume


def skip_reason(name: str, params: dict, m: int, n: int) -> str | None:
    if name == "symile" and params.get("negatives") == "n_squared" and n**m > MAX_N_SQUARED_TERMS:
        return (f"N^M = {n}^{m} = {n**m:.2e} (anchor, tuple) terms per anchor: minutes on "
                f"this CPU (limit {MAX_N_SQUARED_TERMS:.1e})")
    return None


def objective_cells(sizes: list[int], modalities: list[int]) -> list[Cell]:
    cells = []
    for label, name, params in OBJECTIVES:
        for m in modalities:
            for n in sizes:
                cells.append(Cell(
                    f"{label}|{m}|{n}",
                    lambda name=name, params=params, m=m, n=n: objective_call(name, params, m, n),
                    skip_reason(name, params, m, n),
                ))
    return cells


def gram_cells(sizes: list[int], ks: list[int]) -> list[Cell]:
    return [
        Cell(f"gram|{column}|{k}|{n}", lambda column=column, k=k, n=n: gram_call(column, k, n))
        for n in sizes for k in ks for column in GRAM_COLUMNS
    ]


# ----------------------------------------------------------------------------- measuring


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1))


def _peak_growth_mib(call: Callable[[], None]) -> float:
    """Peak RSS growth (MiB) while ``call`` runs; NaN where /proc cannot be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        call()
        return float("nan")
    before = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - before) / 1024


def memory_phase(cells: list[Cell]) -> dict[str, float]:
    """Peak MiB of each cell, after a warm-up call (unless that call was slow)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        print("  (no glibc: memory figures are lower bounds)", file=sys.stderr)
    peaks = {}
    for cell in cells:
        if cell.skip:
            continue
        call = cell.build()
        start = time.perf_counter()
        peak = _peak_growth_mib(call)
        if time.perf_counter() - start < SLOW_CALL_S:
            peak = _peak_growth_mib(call)
        peaks[cell.key] = max(peak, 0.0)
    return peaks


def time_calls(
    calls: list[Callable[[], None]], clock: Callable[[], float]
) -> list[tuple[float, int]]:
    """``(best ms, calls timed)`` of each call, timed in interleaved rounds after a warm-up."""
    firsts = []
    for call in calls:
        start = clock()
        call()
        firsts.append(clock() - start)
    if max(firsts) > SLOW_CALL_S:
        return [(first * 1e3, 1) for first in firsts]
    spent: list[list[float]] = [[] for _ in calls]
    while len(spent[0]) < 5 and max(sum(t) for t in spent) < 1.0:
        for call, times in zip(calls, spent):
            start = clock()
            call()
            times.append(clock() - start)
    return [(min(t) * 1e3, len(t)) for t in spent]


def time_phase(cells: list[Cell], clock: Callable[[], float], group: int = 1) -> dict:
    """Times of the cells; ``group`` consecutive cells are timed together, interleaved."""
    times = {}
    for start in range(0, len(cells), group):
        batch = [cell for cell in cells[start : start + group] if not cell.skip]
        if not batch:
            continue
        for cell, result in zip(batch, time_calls([c.build() for c in batch], clock)):
            times[cell.key] = result
            print(f"  {cell.key}: {result[0]:.1f} ms", file=sys.stderr)
    return times


# ----------------------------------------------------------------------------- report


def objective_table(cells: list[Cell], times: dict, peaks: dict, sizes: list[int]) -> str:
    lines = ["| objective | M | " + " | ".join(f"N={n}" for n in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    row: dict[tuple[str, str], list[str]] = {}
    for cell in cells:
        label, m, _ = cell.key.split("|")
        if cell.skip:
            text = "skipped"
        else:
            ms, calls = times[cell.key]
            peak = peaks.get(cell.key, float("nan"))
            text = f"{ms:.1f} ms{'¹' if calls == 1 else ''} / {peak:.1f} MiB"
        row.setdefault((label, m), []).append(text)
    lines += [f"| {label} | {m} | " + " | ".join(texts) + " |" for (label, m), texts in row.items()]
    return "\n".join(lines)


def gram_table(sizes: list[int], ks: list[int], times: dict, peaks: dict) -> str:
    lines = ["| N | k | " + " | ".join(GRAM_COLUMNS[:2]) + " | speed-up | "
             + " | ".join(GRAM_COLUMNS[2:]) + " | speed-up | max abs diff of V |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        for k in ks:
            keys = [f"gram|{column}|{k}|{n}" for column in GRAM_COLUMNS]
            ms = [times[key][0] for key in keys]
            texts = [f"{t:.1f} ms / {peaks.get(key, float('nan')):.1f} MiB"
                     for t, key in zip(ms, keys)]
            anchor, *others = (x.detach() for x in _inputs(k, n))
            with torch.no_grad():
                diff = (gram_volume(anchor, others) - volume_torch_det(anchor, others)).abs().max()
            lines.append(f"| {n} | {k} | {texts[0]} | {texts[1]} | {ms[1] / ms[0]:.1f}x | "
                         f"{texts[2]} | {texts[3]} | {ms[3] / ms[2]:.1f}x | {diff.item():.1e} |")
    return "\n".join(lines)


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = re.search(r"Model name:\s+(.+)", lscpu).group(1).strip()
    except (OSError, AttributeError):
        model = platform.processor() or "unknown CPU"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core CPU ({model}), {gpu}; torch {torch.__version__}"


def _load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,256,1024", help="batch sizes N, comma-separated")
    parser.add_argument("--modalities", default="2,3,4", help="modality counts M")
    parser.add_argument("--gram-sizes", default="256,1024", help="N of the GRAM table")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="process CPU time (robust on a shared machine) or wall time")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "objectives.md"))
    parser.add_argument("--memory-json", help=argparse.SUPPRESS)  # internal: the child phase
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",")]
    modalities = [int(v) for v in args.modalities.split(",")]
    gram_sizes = [int(v) for v in args.gram_sizes.split(",")]
    cells = objective_cells(sizes, modalities)
    grams = gram_cells(gram_sizes, modalities)
    if args.memory_json:
        Path(args.memory_json).write_text(json.dumps(memory_phase(cells + grams)))
        return

    given = argv if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python benchmarks/objectives.py", *given])
    started, load_before = time.perf_counter(), _load_average()
    with tempfile.TemporaryDirectory() as folder:
        memory_file = Path(folder) / "memory.json"
        child = [sys.executable, __file__, *given, "--memory-json", str(memory_file)]
        subprocess.run(child, check=True)
        peaks = json.loads(memory_file.read_text())
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = time_phase(cells, clock)
    times.update(time_phase(grams, clock, group=len(GRAM_COLUMNS)))
    for cell in cells:
        if cell.skip:
            print(f"  {cell.key}: skipped, {cell.skip}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    how = ("process CPU time" if args.clock == "cpu" else "wall time") + (
        f" with {args.threads} thread{'s' if args.threads > 1 else ''}")
    text = "\n".join([
        "# Objectives: forward+backward on CPU",
        "",
        f"Machine: {machine()}; load average {load_before} at the start and "
        f"{_load_average()} at the end (the machine is shared with other jobs).  ",
        f"Command: `{command}` ({elapsed:.0f} s, {datetime.date.today().isoformat()}).",
        "",
        f"Each cell: the best {how} of forward+backward (float32, D={D}, s={SCALE}) / the "
        "peak resident-memory growth of one call, measured in a separate process where "
        "glibc returns blocks over 64 KiB to the OS (see the script's docstring). "
        f"¹ timed once (a call over {SLOW_CALL_S:.0f} s).",
        "",
        objective_table(cells, times, peaks, sizes),
        "",
        *(f"- {c.key.replace('|', ', M=', 1).replace('|', ', N=')}: skipped, {c.skip}"
          for c in cells if c.skip),
        "",
        "## GRAM: closed-form Gram determinant vs the torch.det stack",
        "",
        "Forward+backward of the volume matrix V alone (`V.sum().backward()`) and of the",
        "whole `gram` loss (two label-smoothed cross-entropies on -s·V). The reference way",
        "builds the N²·k·k Gram stack and calls `torch.det` (ispamm/GRAM `utils/volume.py`);",
        "ours is the Schur complement `det G = g·det B − uᵀ adj(B) u` on the same GEMM",
        "outputs, with a hand-written backward (`anymodal/objectives/volume.py`). The four",
        "columns of a row were timed in interleaved rounds.",
        "",
        gram_table(gram_sizes, modalities, times, peaks),
        "",
    ])
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
