"""Train a recipe for whole epochs through the command line and read its speed back.

``benchmarks/cache.py`` (sample cache) and ``benchmarks/feature_cache.py`` (frozen-feature
cache) compare a run without a cache against one that fills the cache in epoch 1 and reads
it afterwards: both train with ``python -m anymodal train`` in a fresh output folder and
take the steps/s of epoch 1 and of the later epochs from the ``time`` of each step's record
in ``metrics.jsonl`` (so the recipe must log every step: ``train.log_every=1``, a ``csv``
tracker). Import it with the benchmarks folder on ``sys.path``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class EpochRun:
    """The speed and losses of one training run of whole epochs.

    Args:
        per_epoch: optimiser steps per epoch.
        steps: steps in all.
        epoch1: steps/s of epoch 1, from the command's start (start-up included).
        later: steps/s from the end of epoch 1 to the last step.
        losses: ``train/loss`` of every step, in step order.
        wait: the last ``train/data_wait_fraction`` logged (NaN: none).
    """

    per_epoch: int
    steps: int
    epoch1: float
    later: float
    losses: list[float]
    wait: float

    def row(self, label: str, loss_digits: int = 4) -> str:
        """The run as a markdown row: label, both rates, data wait, last train loss."""
        return (f"| {label} | {self.epoch1:.2f} | {self.later:.2f} | {self.wait:.0%} | "
                f"{self.losses[-1]:.{loss_digits}f} |")


#: The header of the table :meth:`EpochRun.row` fills.
TABLE_HEADER = ("| run | epoch 1 steps/s | steps/s from epoch 2 | data wait | last train loss |\n"
                "|---|---|---|---|---|")


def train_epochs(recipe: str | Path, output_dir: Path, per_epoch: int, epochs: int,
                 overrides: Sequence[str] = ()) -> EpochRun:
    """Train ``recipe`` for ``epochs`` epochs in ``output_dir`` (offline), then read its log.

    Args:
        recipe: the recipe, relative to the repository root or absolute.
        output_dir: the run's folder (``train.output_dir``); must not hold a run.
        per_epoch: steps per epoch (rows // batch size, the loader dropping the last).
        epochs: epochs to train (``train.max_steps = per_epoch * epochs``, at least 2).
        overrides: further ``key=value`` overrides of the recipe.

    Raises:
        RuntimeError: the training command failed (with the end of its stderr).
    """
    steps = per_epoch * epochs
    command = [sys.executable, "-m", "anymodal", "train", str(recipe),
               f"train.output_dir={output_dir}", f"train.max_steps={steps}", *overrides]
    began = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"training failed:\n{done.stderr[-3000:]}")
    return read_epoch_run(output_dir / "metrics.jsonl", began, per_epoch, steps)


def read_epoch_run(metrics: Path, began: float, per_epoch: int, steps: int) -> EpochRun:
    """The :class:`EpochRun` of a ``metrics.jsonl`` whose run started at ``began``.

    Raises:
        RuntimeError: the log lacks the step that ends epoch 1 or the last step.
    """
    times: dict[int, float] = {}
    losses: dict[int, float] = {}
    wait = math.nan
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        if "train/loss" in record:
            times[int(record["step"])] = float(record["time"])
            losses[int(record["step"])] = float(record["train/loss"])
        wait = float(record.get("train/data_wait_fraction", wait))
    missing = [step for step in (per_epoch, steps) if step not in times]
    if missing:
        raise RuntimeError(f"{metrics} logs no train/loss at step(s) {missing}: train with "
                           f"train.log_every=1 for {steps} steps")
    first, last = times[per_epoch], times[steps]
    return EpochRun(per_epoch, steps, per_epoch / (first - began),
                    (steps - per_epoch) / (last - first),
                    [losses[step] for step in sorted(losses)], wait)
