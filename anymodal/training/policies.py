"""The loop's policies, one small function each.

Bad rows, the non-finite guard, the logit-scale clamp, and the two collectives every
micro-batch costs.

Every process calls the collective helpers in the same order; what they return is the same
on every process, so that all processes take the same branch (a process that skipped a step
alone would leave the others waiting in DDP's all-reduce forever).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from anymodal.data.collate import BAD_KEY, BadRow, batch_size
from anymodal.errors import AnymodalError, DataError
from anymodal.types import IDS_KEY

from .context import Run
from .signals import StopRequest

__all__ = ["Agreement", "agree_before_step", "check_bad_fraction", "clamp_logit_scale",
           "guard_loss", "known_bad_rows", "on_nonfinite", "record_bad_rows"]

logger = logging.getLogger("anymodal.training")


@dataclass(frozen=True)
class Agreement:
    """What all processes agreed on before a micro-batch (collective 1 of 2).

    Attributes:
        new_bad: rows that failed to load for the first time, summed over processes.
        rows: rows read (good and bad), summed over processes.
        too_small: some process holds fewer than 2 good rows (every process skips).
        stop: some process received SIGINT/SIGTERM.
    """

    new_bad: int
    rows: int
    too_small: bool
    stop: bool


def _all_reduce_sum(run: Run, *values: float) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=run.accelerator.device)
    return run.accelerator.reduce(tensor, reduction="sum").tolist()


def agree_before_step(run: Run, batch: dict[str, Any], stop: StopRequest) -> Agreement:
    """Count bad rows, check the batch size and read the stop flag in one all-reduce."""
    new_bad = record_bad_rows(run, batch)
    good = batch_size(batch)
    bad, rows, small, stopping = _all_reduce_sum(
        run, new_bad, good + len(batch.get(BAD_KEY, [])), float(good < 2), float(stop.requested))
    return Agreement(int(bad), int(rows), small > 0, stopping > 0)


def record_bad_rows(run: Run, batch: dict[str, Any]) -> int:
    """Report the rows that failed to load for the first time; return how many.

    Each goes to ``bad_samples.jsonl`` and the log once, not once per epoch.
    """
    new = [row for row in batch.get(BAD_KEY, []) if row.index not in run.seen_bad]
    if not new:
        return 0
    path = run.output_dir / "bad_samples.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND keeps whole lines from several processes apart.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        for row in new:
            run.seen_bad.add(row.index)
            record = {**row.as_record(), "step": run.state.step,
                      "process": run.accelerator.process_index}
            os.write(fd, (json.dumps(record) + "\n").encode())
            logger.warning("skipped row %s (%s): %s", row.index, row.id, row.reason)
    finally:
        os.close(fd)
    return len(new)


def known_bad_rows(run: Run) -> set[int]:
    """The rows a resumed run already reported (so it does not count them again)."""
    path = run.output_dir / "bad_samples.jsonl"
    if not path.is_file():
        return set()
    seen = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            seen.add(int(json.loads(line)["index"]))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from a killed run
    return seen


def check_bad_fraction(run: Run) -> None:
    """Stop when more than ``data.max_bad_fraction`` of the rows read were bad."""
    s, limit = run.state, run.config.data.max_bad_fraction
    if s.rows_seen >= run.config.data.batch_size and s.bad_rows > limit * s.rows_seen:
        raise AnymodalError(
            f"{s.bad_rows} of {s.rows_seen} rows were bad (failed to load, or embedded to "
            f"NaN; more than data.max_bad_fraction={limit}); see "
            f"{run.output_dir / 'bad_samples.jsonl'} for each row and reason")


def guard_loss(run: Run, loss: torch.Tensor, bad: Sequence[BadRow] = ()) -> tuple[bool, float]:
    """Agree whether the loss is finite everywhere and average it (collective 2 of 2).

    The same all-reduce counts the rows whose embeddings were not finite (``bad``, from
    :func:`anymodal.data.guard.nonfinite_bad_rows`): they are bad rows, reported and counted
    like rows that failed to load, and an error under ``data.on_error: raise``.

    Args:
        run: the run.
        loss: this process's loss.
        bad: this process's rows whose embeddings were not finite.

    Returns:
        ``(finite, mean loss over processes)``; the mean is NaN when not finite.

    Raises:
        DataError: ``data.on_error`` is ``raise`` and some process had such a row.
    """
    value = loss.detach().float()
    finite = bool(torch.isfinite(value))
    raising = run.config.data.on_error == "raise"
    new = record_bad_rows(run, {BAD_KEY: list(bad)}) if bad and not raising else len(bad)
    nonfinite, total, new_bad = _all_reduce_sum(
        run, float(not finite), float(value) if finite else 0.0, float(new))
    if new_bad and raising:  # on every process, so that none waits for the others
        raise DataError(f"row {bad[0].id}" if bad else "a row on another process",
                        bad[0].reason if bad else "has a NaN or infinite embedding")
    run.state.bad_rows += int(new_bad)
    if nonfinite:
        return False, math.nan
    return True, total / run.accelerator.num_processes


def on_nonfinite(run: Run, batch: dict[str, Any], suspects: Sequence[BadRow] = ()) -> None:
    """A step whose loss was not finite was skipped: log it, stop after too many in a row.

    Args:
        run: the run.
        batch: the step's (last) batch.
        suspects: rows of the step whose embeddings were not finite; the message then names
            them instead of the learning rate.
    """
    run.nonfinite_run += 1
    logger.warning("non-finite loss at step %d: step skipped", run.state.step + 1)
    if run.nonfinite_run < run.config.train.max_nonfinite:
        return
    head = f"{run.nonfinite_run} non-finite losses in a row; stopped at step {run.state.step}"
    if suspects:
        rows = "; ".join(f"row {r.id}: {r.reason}" for r in suspects[:4])
        raise AnymodalError(
            f"{head}: rows of the batch have NaN or infinite embeddings although their "
            f"inputs are finite, and too few finite rows were left to train on ({rows}). "
            "The data is at fault, not the learning rate: rescale or remove these items.")
    raise AnymodalError(
        f"{head} (batch ids {batch[IDS_KEY][:8]}...; last finite loss {run.last_finite}). "
        "Lower optim.lr, or check the data and mixed precision.")


def clamp_logit_scale(run: Run) -> None:
    """Keep the learned logit scale at or under ``model.logit_scale_max`` (as CLIP)."""
    model = run.raw_model
    with torch.no_grad():
        model.log_logit_scale.clamp_(max=math.log(model.logit_scale_max))
