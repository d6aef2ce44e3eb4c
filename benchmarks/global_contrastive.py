"""CLIP against SogCLR's global contrastive loss at small and larger batches, on digits.

The objective study's setting (``examples/compare_objectives.py``: the three-modality digits
set, its encoders, optimiser and test tasks, label positives), with the same number of
training rows seen at every batch size (``--rows``, about 2.7 epochs of the 1,438 training
rows by default), so that ``global_contrastive`` revisits each row and its stored
denominators matter. Writes ``benchmarks/results/global_contrastive.md``.

Run from the repository root::

    .venv/bin/python benchmarks/global_contrastive.py                 # 2 seeds, batch 16 and 64
    .venv/bin/python benchmarks/global_contrastive.py --seeds 1 --rows 256   # a smoke run
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import compare_objectives as study  # noqa: E402

RUNS = (("clip (all pairs)", "clip", {"pairs": "all"}),
        ("global_contrastive", "global_contrastive", {"gamma": 0.9}),
        # gamma = 1 keeps no memory: each row's denominator is its batch's estimate alone,
        # which isolates what the moving average adds.
        ("global_contrastive gamma=1", "global_contrastive", {"gamma": 1.0}),
        # a longer memory (FastCLIP's schedule ends at 0.2)
        ("global_contrastive gamma=0.2", "global_contrastive", {"gamma": 0.2}))
DEFAULT_RUNS = "clip (all pairs),global_contrastive"


def run_one(name: str, params: dict, seed: int, data_dir: Path, budget: study.Budget,
            work: Path) -> tuple[dict[str, float], float]:
    """Train one model with the study's config and evaluate it on the test split.

    Returns:
        ``({task: R@1}, training seconds)``.
    """
    out = work / f"{name}-{'-'.join(map(str, params.values()))}-b{budget.batch_size}-{seed}"
    config = study.make_config(name, params, seed, data_dir / "train.jsonl", budget,
                               budget.batch_size, out)
    return study.train_and_score(config, data_dir / "test.jsonl", study.TASKS)


def measure(data_dir: Path, batches: list[int], seeds: int, rows: int, work: Path,
            runs: list[str]) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """``(label, batch) -> {"recall": [tasks, seeds], "seconds": [seeds]}``."""
    out = {}
    for batch in batches:
        budget = study.Budget(steps=max(1, rows // batch), batch_size=batch)
        for label, name, params in (run for run in RUNS if run[0] in runs):
            recall = np.zeros((len(study.TASKS), seeds))
            seconds = np.zeros(seeds)
            for seed in range(seeds):
                scores, seconds[seed] = run_one(name, params, seed, data_dir, budget, work)
                recall[:, seed] = [scores[t] for t in study.TASKS]
                print(f"batch {batch} {label} seed {seed}: mean R@1 "
                      f"{recall[:, seed].mean():.3f} ({seconds[seed]:.0f} s)", flush=True)
            out[(label, batch)] = {"recall": recall, "seconds": seconds}
    return out


def table(results: dict, chance: dict[str, float], batches: list[int], rows: int,
          runs: list[str]) -> list[str]:
    """The markdown table of one invocation."""
    head = "| batch | objective | steps | " + " | ".join(study.TASKS) + " | mean | s/run |"
    lines = [head, "|" + "---|" * (len(study.TASKS) + 5)]
    lines.append("| | chance | | " + " | ".join(f"{chance[t]:.3f}" for t in study.TASKS)
                 + f" | {np.mean([chance[t] for t in study.TASKS]):.3f} | |")
    for batch in batches:
        for label in (run[0] for run in RUNS if run[0] in runs):
            r = results[(label, batch)]
            cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(r["recall"].mean(1), r["recall"].std(1))]
            means = r["recall"].mean(0)
            lines.append(f"| {batch} | {label} | {rows // batch} | " + " | ".join(cells)
                         + f" | {means.mean():.3f} ± {means.std():.3f} "
                         f"| {r['seconds'].mean():.0f} |")
    return lines


def report(lines: list[str], seeds: int, rows: int, command: str, elapsed: float) -> str:
    """The markdown page."""
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    return f"""# Global contrastive loss (SogCLR) against CLIP at small batches, digits

Machine: {machine}, 2 CPU cores shared with other jobs (the timings are of a loaded
machine and only comparable within one row).\\
Command: `{command}` ({elapsed:.0f} s).

Setting: the objective study's (`examples/compare_objectives.py`): digits in three modalities
(image, audio, text), its encoders, AdamW at peak lr 2e-3 with warmup and cosine decay;
every run sees {rows} training rows (about {rows / 1438:.1f} epochs of the 1,438 training
rows), so the steps are {rows}/batch. `clip` is pairwise InfoNCE over all pairs with a learned
logit scale; `global_contrastive` is SogCLR over all pairs (gamma 0.9), whose logit scale
stays at its initial 1/0.07 (SogCLR's fixed temperature). Test R@1 with label positives,
mean ± std over {seeds} seeds (0..{seeds - 1}); `mean` is the mean over the nine tasks.

{chr(10).join(lines)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--rows", type=int, default=3840, help="training rows per run")
    parser.add_argument("--runs", default=DEFAULT_RUNS,
                        help=f"comma-separated labels among {[r[0] for r in RUNS]}")
    parser.add_argument("--append", action="store_true",
                        help="append this invocation's command and table to --out")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "global_contrastive.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batches = [int(b) for b in args.batches.split(",")]
    data_dir = REPO / "data" / "digits3"
    study.build_data(data_dir, None)
    study.warm_up(data_dir)
    chance = {t: study.chance_recall(data_dir / "test.jsonl", t)[0] for t in study.TASKS}
    started = time.perf_counter()
    work = REPO / "runs" / "bench_global_contrastive"
    runs = [label.strip() for label in args.runs.split(",")]
    unknown = set(runs) - {r[0] for r in RUNS}
    if unknown:
        raise SystemExit(f"unknown runs {sorted(unknown)}; choose from {[r[0] for r in RUNS]}")
    results = measure(data_dir, batches, args.seeds, args.rows, work, runs)
    command = shlex.join([".venv/bin/python", "benchmarks/global_contrastive.py", *sys.argv[1:]])
    lines = table(results, chance, batches, args.rows, runs)
    elapsed = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.out.exists():
        text = (f"\nCommand: `{command.strip()}` ({elapsed:.0f} s), same setting:\n\n"
                + "\n".join(lines) + "\n")
        args.out.write_text(args.out.read_text(encoding="utf-8") + text, encoding="utf-8")
    else:
        text = report(lines, args.seeds, args.rows, command.strip(), elapsed)
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
