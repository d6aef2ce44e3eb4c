"""Peak memory of one training step against batch size, with and without GradCache.

    python benchmarks/gradcache.py            # writes benchmarks/results/gradcache.md

Each (batch, mode) runs in a fresh process (so that no allocator cache carries over): it
builds a ``MultiModalModel`` (three vector modalities, MLP encoders, ``clip``), a batch of
random rows, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs one
forward + backward, and reports the peak resident set size above the RSS before the step
(``VmHWM - VmRSS`` from ``/proc/self/status``: what the step itself needed, activations,
logits and gradients), with glibc told to map every block over 128 KiB on its own
(``MALLOC_MMAP_THRESHOLD_``) so that freed tensors leave the resident set at once.
``tracemalloc`` is not used: it sees Python objects only, not tensor storage. The modes:
the plain step, GradCache, and the loss alone (on ready embeddings). The step's wall time
and, at the smallest batch, the largest difference between the plain and GradCache
gradients are reported too.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gradcache.md"
SIZES = {"dim": 256, "hidden": 1024, "depth": 4, "embed": 128}


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) * 1024  # type: ignore[union-attr]


def _model_and_batch(batch: int):  # type: ignore[no-untyped-def]
    import torch

    from anymodal import MultiModalModel
    from anymodal.config import load_config
    from anymodal.types import PRESENT_KEY

    overrides = [f"model.embed_dim={SIZES['embed']}", "objective.name=clip"]
    for index, key in enumerate("abc"):
        overrides += [f"modalities.{key}.modality=vector",
                      f"modalities.{key}.options.dim={SIZES['dim']}",
                      f"modalities.{key}.options.view_seed={index + 1}",
                      f"modalities.{key}.params.in_dim={SIZES['dim']}",
                      f"modalities.{key}.params.hidden={SIZES['hidden']}",
                      f"modalities.{key}.params.depth={SIZES['depth']}",
                      f"modalities.{key}.params.width={SIZES['hidden']}"]
    torch.manual_seed(0)
    model = MultiModalModel(load_config(None, overrides)).train()
    g = torch.Generator().manual_seed(1)
    data = {key: torch.randn(batch, SIZES["dim"], generator=g) for key in "abc"}
    data[PRESENT_KEY] = {key: torch.ones(batch, dtype=torch.bool) for key in "abc"}
    return model, data


def child(batch: int, micro: int, grads_out: str | None) -> dict[str, float]:
    """One measurement in this (fresh) process; ``micro=0`` is the plain step, ``micro=-1``
    the loss alone (forward and backward on ready embeddings)."""
    import ctypes
    import gc

    import torch

    from anymodal.training.gradcache import gradcache_step

    torch.set_num_threads(1)
    # autograd.backward(tensors, grad_tensors) imports this (and sympy) on first use: a
    # one-time cost of the process, kept out of the step's time and memory.
    import torch.fx.experimental.symbolic_shapes

    model, data = _model_and_batch(batch)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed set-up memory leaves the baseline
    Path("/proc/self/clear_refs").write_text("5")  # the peak mark starts from now
    before = _status("VmRSS")
    start = time.perf_counter()
    if micro < 0:  # the loss alone, on embeddings that need no encoder
        embeddings = {key: torch.nn.functional.normalize(
            torch.randn(batch, SIZES["embed"]), dim=-1).requires_grad_() for key in "abc"}
        model.objective(embeddings, model.logit_scale())["loss"].backward()
    elif micro:
        gradcache_step(model, data, micro)
    else:
        model(data, return_loss=True)["loss"].backward()
    seconds = time.perf_counter() - start
    peak = _status("VmHWM") - before
    if grads_out:
        torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None},
                   grads_out)
    return {"batch": batch, "micro": micro, "peak_mb": peak / 2**20, "seconds": seconds}


def measure(batch: int, micro: int, grads_out: str | None = None) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(batch), str(micro)]
    if grads_out:
        command.append(grads_out)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "ANYMODAL_DISABLE_PLUGIN_AUTOLOAD": "1",
                               "PATH": "/usr/bin:/bin",
                               # blocks over 128 KiB are mapped and unmapped at once, so the
                               # resident set follows the live tensors
                               "MALLOC_MMAP_THRESHOLD_": "131072"})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gradient_gap(batch: int, micro: int, folder: Path) -> float:
    """The largest |plain - GradCache| over every parameter gradient at ``batch``."""
    import torch

    measure(batch, 0, str(folder / "plain.pt"))
    measure(batch, micro, str(folder / "cached.pt"))
    plain = torch.load(folder / "plain.pt")
    cached = torch.load(folder / "cached.pt")
    assert plain.keys() == cached.keys()
    return max(float((plain[k] - cached[k]).abs().max()) for k in plain)


def _cpu() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(rows: list[tuple[dict, dict, dict]], micro: int, gap: float, command: str) -> str:
    import torch

    cpu = _cpu()
    lines = [
        "# GradCache: peak memory against batch size",
        "",
        f"Machine: {cpu}, 1 torch thread per measurement, no GPU, torch {torch.__version__}; "
        f"the machine was shared with other jobs (times are indicative). Command: `{command}`.",
        "",
        f"One training step (forward + backward) of a `MultiModalModel`: three vector "
        f"modalities of dim {SIZES['dim']}, MLP encoders ({SIZES['depth']} layers of "
        f"{SIZES['hidden']}), embed_dim {SIZES['embed']}, `clip`. Peak memory is the peak "
        "resident set size during the step above the RSS before it (Linux `VmHWM` after "
        "resetting it through `/proc/self/clear_refs`), one fresh process per cell; not "
        "tracemalloc, which does not see tensor storage.",
        "",
        f"| batch | plain: peak MiB | GradCache (micro {micro}): peak MiB | memory ratio | "
        "the loss alone: peak MiB | plain: s | GradCache: s | time ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for plain, cached, loss in rows:
        lines.append(
            f"| {plain['batch']} | {plain['peak_mb']:.0f} | {cached['peak_mb']:.0f} | "
            f"{cached['peak_mb'] / max(plain['peak_mb'], 1e-9):.2f} | {loss['peak_mb']:.0f} | "
            f"{plain['seconds']:.2f} | {cached['seconds']:.2f} | "
            f"{cached['seconds'] / plain['seconds']:.2f} |")
    lines += [
        "",
        f"Largest difference between the two modes' parameter gradients at batch "
        f"{rows[0][0]['batch']} (float32): {gap:.1e}. The plain step's memory grows with the "
        "batch (every row's activations are kept for backward); GradCache keeps one "
        "micro-batch's activations plus the embeddings and the loss's own batch x batch "
        "logits, and pays one more forward pass per micro-batch. 'The loss alone' is the "
        "objective's forward and backward on ready embeddings: `clip` over three pairs keeps "
        "about ten batch x batch float32 matrices alive (64 MiB each at 4096 rows), whatever "
        "the encoders. GradCache's peak is the larger of its two phases, the loss on the "
        "cached embeddings (that column) and one micro-batch's activations with the weight "
        "gradients (flat in the batch size): at large batches the loss sets it (compare the "
        "two columns). The "
        "plain step holds every row's activations at once, which grow with the batch and "
        "with the encoders' depth and width: with real encoders (a ViT keeps megabytes per "
        "row) the gap is far wider than with these MLPs. "
        "Times: one thread on a shared 2-core machine; the extra forward pass alone would "
        "cost about 1.3x, small micro-batches use the CPU less well than large ones.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512, 2048, 4096])
    parser.add_argument("--micro", type=int, default=64)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # BATCH MICRO [GRADS]
    args = parser.parse_args()
    if args.child:
        grads = args.child[2] if len(args.child) > 2 else None
        print(json.dumps(child(int(args.child[0]), int(args.child[1]), grads)))
        return
    import tempfile

    rows = []
    for batch in args.batches:
        rows.append((measure(batch, 0), measure(batch, args.micro), measure(batch, -1)))
        print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as folder:
        gap = gradient_gap(args.batches[0], args.micro, Path(folder))
    command = "python benchmarks/gradcache.py " + " ".join(sys.argv[1:])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report(rows, args.micro, gap, command.strip()))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
