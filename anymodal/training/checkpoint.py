"""Checkpoints: ``output_dir/checkpoints/step_<n>``, swapped in crash-safely, ``keep`` kept.

A checkpoint holds what ``accelerator.save_state`` writes (model, optimiser, scheduler,
grad scaler, every process's RNG states), ``trainer_state.json`` (step, data position) and,
written last, ``checkpoint.json``: the size and SHA-256 of every other file. A checkpoint is
*complete* when each listed file is present with its size (a cheap test, for rotation) and
*valid* when each digest matches too (checked before a resume). ``resume=auto`` takes the
newest valid checkpoint and warns, naming each newer one it skipped and why.

Every write and delete goes through :mod:`anymodal.utils.atomic`: a kill at any moment
leaves each ``step_<n>`` either absent, or complete and valid. A checkpoint this process
wrote with the very trainer state being saved is not written a second time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from anymodal.errors import ArtifactError
from anymodal.utils.atomic import commit, discard, recover, stage, sweep
from anymodal.utils.checksums import digest_files, verify_files

__all__ = [
    "TrainerState",
    "checkpoint_root",
    "complete_checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
]

logger = logging.getLogger("anymodal.training")

STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "checkpoint.json"
FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")
# (resolved path, inode) -> trainer state of each checkpoint this process wrote: a folder
# another run left at the same path (same step, other weights) is never taken for ours.
_WRITTEN: dict[tuple[str, int], dict[str, Any]] = {}


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
    """The folder holding a run's ``step_<n>`` checkpoints.

    Args:
        output_dir: the run's output folder.
    """
    return Path(output_dir) / "checkpoints"


def save_checkpoint(accelerator: Accelerator, output_dir: str | Path, state: TrainerState,
                    keep: int) -> Path:
    """Save a checkpoint crash-safely (every process must call this); returns its path.

    The main process makes one staging folder and tells the others its name; all of them
    ``save_state`` into it; the main process then lists and checksums the files and swaps
    the folder in. When this process already wrote ``step_<n>`` with this very trainer
    state, nothing is written (no checkpoint is written twice).

    Args:
        accelerator: the run's accelerator.
        output_dir: the run's output folder.
        state: the trainer state to record.
        keep: how many complete checkpoints to keep (at least one).
    """
    root = checkpoint_root(output_dir)
    final = root / f"step_{state.step}"
    plan: list[Any] = [False, ""]
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        sweep(root)  # staging folders and half-deleted copies of crashed runs
        plan = [_holds_state(final, state), ""]
        if not plan[0]:
            plan[1] = str(stage(final))
    broadcast_object_list(plan)
    if plan[0]:
        return final
    staging = Path(plan[1])
    try:
        accelerator.save_state(str(staging), safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _seal(staging, state)
            commit(staging, final)
            _WRITTEN[(str(final.resolve()), final.stat().st_ino)] = asdict(state)
            _rotate(root, keep)
    except BaseException:
        if accelerator.is_main_process:
            discard(staging)
        raise
    accelerator.wait_for_everyone()
    return final


def _seal(staging: Path, state: TrainerState) -> None:
    """Write ``trainer_state.json``, then ``checkpoint.json`` listing every file."""
    (staging / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n")
    names = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]
    manifest = {"format_version": FORMAT_VERSION, "step": state.step,
                "files": digest_files(staging, names)}
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def _read_manifest(path: Path) -> dict[str, Any]:
    """The checked ``checkpoint.json`` of a checkpoint folder."""
    file = path / MANIFEST_FILE
    if not file.is_file():
        raise ArtifactError(f"{file} is missing: {path} is not a complete checkpoint")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{file} is damaged: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{file} is not a checkpoint manifest of format {FORMAT_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or STATE_FILE not in files:
        raise ArtifactError(f"{file} is damaged: expected 'files' listing {STATE_FILE}")
    return manifest


def _is_complete(path: Path) -> bool:
    """Every file the checkpoint lists is present with its recorded size (no hashing)."""
    try:
        files = _read_manifest(path)["files"]
        return all(isinstance(e, dict) and (path / n).is_file()
                   and (path / n).stat().st_size == e.get("size") for n, e in files.items())
    except (ArtifactError, OSError):
        return False


def _holds_state(path: Path, state: TrainerState) -> bool:
    """Whether this process wrote ``path`` with this trainer state, still complete."""
    try:
        key = (str(path.resolve()), path.stat().st_ino)
    except OSError:
        return False
    return _WRITTEN.get(key) == asdict(state) and _is_complete(path)


def _step_dirs(root: Path) -> list[tuple[int, Path]]:
    """Every ``step_<n>`` folder, oldest first, complete or not."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), child) for child in root.iterdir()
             if (m := _STEP_DIR.match(child.name)) and child.is_dir()]
    return sorted(found)


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first (files present, sizes checked).

    Args:
        output_dir: the run's output folder.
    """
    return [path for _, path in _step_dirs(checkpoint_root(output_dir)) if _is_complete(path)]


def _rotate(root: Path, keep: int) -> None:
    """Delete complete checkpoints beyond the newest ``keep``.

    Incomplete folders older than the oldest one kept go too, each through an atomic rename.
    """
    steps = _step_dirs(root)
    complete = [(step, path) for step, path in steps if _is_complete(path)]
    kept = complete[-max(1, keep):]
    oldest_kept = kept[0][0] if kept else None
    for step, path in steps:
        if (step, path) in kept:
            continue
        if _is_complete(path) or (oldest_kept is not None and step < oldest_kept):
            discard(path)


def verify_checkpoint(path: str | Path) -> TrainerState:
    """Check every file of a checkpoint against ``checkpoint.json``; return its state.

    Args:
        path: a ``step_<n>`` folder.

    Raises:
        ArtifactError: naming the missing or damaged file and what was expected.
    """
    path = Path(path)
    recover(path)
    if not path.is_dir():
        raise ArtifactError(f"checkpoint {path} does not exist")
    verify_files(path, _read_manifest(path)["files"], f"checkpoint's {MANIFEST_FILE}")
    return _read_state(path / STATE_FILE)


def _read_state(file: Path) -> TrainerState:
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{file} cannot be read as JSON ({exc})") from None
    known = {f.name for f in dataclasses.fields(TrainerState)}
    if not isinstance(raw, dict) or not isinstance(raw.get("step"), int):
        raise ArtifactError(f"{file} is damaged: expected an object with an integer 'step'")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ArtifactError(f"{file} has unknown fields {unknown}; known: {sorted(known)}")
    return TrainerState(**raw)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest *valid* checkpoint (every digest checked), or ``None``.

    Each newer checkpoint that is incomplete or damaged is skipped with a warning naming it
    and what is wrong, so that a crash or a damaged file costs only the steps since the
    previous checkpoint.

    Args:
        output_dir: the run's output folder.
    """
    root = checkpoint_root(output_dir)
    sweep(root)
    for _, path in reversed(_step_dirs(root)):
        try:
            verify_checkpoint(path)
        except ArtifactError as exc:
            logger.warning("checkpoint %s skipped: %s", path, exc)
            continue
        return path
    return None


def load_checkpoint(accelerator: Accelerator, path: str | Path) -> TrainerState:
    """Verify a checkpoint, then restore model, optimiser, scheduler, scaler and RNG states.

    Args:
        accelerator: the run's accelerator (after ``prepare``).
        path: a ``step_<n>`` folder.

    Returns:
        The trainer state recorded with it.

    Raises:
        ArtifactError: a file is missing or damaged (named).
    """
    state = verify_checkpoint(path)
    accelerator.load_state(str(path))
    return state
