"""Checkpoints: ``output_dir/checkpoints/step_<n>``, written under a temporary name and
renamed once complete, the last ``keep`` kept.

A checkpoint holds what ``accelerator.save_state`` writes (model, optimiser, scheduler,
grad scaler, every process's RNG states) plus ``trainer_state.json`` (step, data position).
Only a folder named ``step_<n>`` with a ``trainer_state.json`` counts as complete.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from accelerate import Accelerator

__all__ = ["TrainerState", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class TrainerState:
    """Where training stands: optimiser steps, batches consumed, and a few counters."""

    step: int = 0
    batches_seen: int = 0
    samples_seen: int = 0
    bad_rows: int = 0
    rows_seen: int = 0
    best: dict[str, float] | None = None


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(accelerator: Accelerator, output_dir: str | Path, state: TrainerState,
                    keep: int) -> Path:
    """Save a complete checkpoint atomically (every process must call this)."""
    root = checkpoint_root(output_dir)
    final = root / f"step_{state.step}"
    staging = root / f".step_{state.step}.tmp"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        _rotate(root, keep)
    accelerator.wait_for_everyone()
    return final


def _complete(root: Path) -> list[tuple[int, Path]]:
    found = []
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / STATE_FILE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def _rotate(root: Path, keep: int) -> None:
    complete = _complete(root)
    for _, path in complete[: max(0, len(complete) - max(1, keep))]:
        shutil.rmtree(path, ignore_errors=True)
    for leftover in root.glob(".step_*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or ``None``."""
    complete = _complete(checkpoint_root(output_dir))
    return complete[-1][1] if complete else None


def load_checkpoint(accelerator: Accelerator, path: str | Path) -> TrainerState:
    """Restore model, optimiser, scheduler, scaler and RNG states; return the trainer state."""
    path = Path(path)
    accelerator.load_state(str(path))
    raw = json.loads((path / STATE_FILE).read_text())
    return TrainerState(**raw)
