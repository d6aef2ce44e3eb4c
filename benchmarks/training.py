"""Training throughput on this machine.

    python benchmarks/training.py            # writes benchmarks/results/training.md

1. samples/s of every smoke recipe (three vector modalities, synthetic data) with one
   process and with two gloo processes (``accelerate launch --multi_gpu --num_processes 2``
   on the CPU), and the scaling efficiency (2-process rate / (2 x 1-process rate));
2. time per optimiser step against the batch size for ``smoke_clip``.

Rates are the median of ``train/samples_per_s`` over the logged steps after the first five
(start-up excluded), read from each run's ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "training.md"
OBJECTIVES = ["clip", "siglip", "symile", "gram", "mv_infonce", "mv_dhel"]


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    return f"{model}, {torch.get_num_threads()} torch threads, no GPU, torch {torch.__version__}"


def run(recipe: str, out: Path, processes: int, steps: int, batch: int) -> float:
    """Train ``steps`` steps; return the median samples/s after warm-up."""
    overrides = [f"train.output_dir={out}", f"train.max_steps={steps}", "train.log_every=1",
                 "train.eval_every=0", "train.checkpoint_every=0", "data.val=null",
                 f"data.batch_size={batch}", "logging.progress=false",
                 f"data.train.size={max(4096, batch * processes * (steps + 1))}"]
    if processes == 1:
        command = [sys.executable, "-m", "anymodal", "train", recipe, *overrides]
    else:
        command = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu",
                   "--num_processes", str(processes), "-m", "anymodal", "train", recipe,
                   *overrides]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    rates = [json.loads(line)["train/samples_per_s"]
             for line in (out / "metrics.jsonl").read_text().splitlines()
             if "train/samples_per_s" in line]
    return statistics.median(rates[5:] or rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64, help="rows per process per step")
    args = parser.parse_args()
    lines = ["# Training throughput", "",
             f"Machine: {machine()}. Command: `python benchmarks/training.py "
             f"--steps {args.steps} --batch {args.batch}`.", "",
             "| recipe | 1 process (samples/s) | 2 processes (samples/s) | scaling efficiency |",
             "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for objective in OBJECTIVES:
            recipe = f"recipes/smoke_{objective}.yaml"
            one = run(recipe, Path(tmp) / f"{objective}-1", 1, args.steps, args.batch)
            two = run(recipe, Path(tmp) / f"{objective}-2", 2, args.steps, args.batch)
            lines.append(f"| smoke_{objective} | {one:,.0f} | {two:,.0f} | "
                         f"{two / (2 * one):.0%} |")
            print(lines[-1], flush=True)
        lines += ["", "On a 2-core machine one process already uses both cores (2 torch threads);"
                  " two processes get one thread each and add a gloo all-reduce per step, so"
                  " about 50% efficiency means no speed-up, as expected. The figure that"
                  " matters, on GPUs, needs a GPU machine.", "",
                  "Time per step against batch size (smoke_clip, one process):", "",
                  "| batch | samples/s | ms per step |", "|---|---|---|"]
        for batch in (16, 64, 256, 1024):
            rate = run("recipes/smoke_clip.yaml", Path(tmp) / f"batch-{batch}", 1,
                       args.steps, batch)
            lines.append(f"| {batch} | {rate:,.0f} | {1000 * batch / rate:.1f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
