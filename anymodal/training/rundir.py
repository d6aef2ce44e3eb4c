"""A run owns its output folder: a lock while it runs, a run id, and no silent adoption.

* **Lock.** The main process holds an exclusive ``flock`` on ``<output_dir>/.lock`` for the
  whole run (the file holds its pid). The kernel drops the lock when the process dies, even
  by SIGKILL, so a crashed run never leaves a stale lock; a second run on the same folder
  is refused, naming the holder's pid.
* **Run id.** ``<output_dir>/run.json`` records the run id and a fingerprint of what
  defines the run (modalities, model, objective, data, optimiser, seed, accumulation,
  modality dropout; not the step budget, cadences, workers or logging).
  ``resume=auto`` continues only a run with the same fingerprint: another recipe's
  checkpoints in the folder are refused, not adopted.
* **No silent mixing.** A fresh run (``resume: no``) in a folder that already holds a
  run's files is refused unless ``train.overwrite=true``, which deletes them first (so old
  checkpoints cannot be resumed later and old metrics do not interleave with new ones).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from omegaconf import DictConfig, OmegaConf

from anymodal.errors import AnymodalError
from anymodal.utils.atomic import atomic_write_text

__all__ = ["RUN_FILES", "OutputLock", "RunRecord", "changed_keys", "claim_output_dir",
           "defining_values", "run_fingerprint", "withdraw_claim"]

LOCK_FILE = ".lock"
RUN_FILE = "run.json"
# What a run writes into its folder; ``overwrite`` deletes these and nothing else.
RUN_FILES = ("checkpoints", "model", "metrics.jsonl", "metrics.csv", "hparams.json",
             "bad_samples.jsonl", RUN_FILE, "report")


@dataclass(frozen=True)
class RunRecord:
    """The contents of ``run.json``.

    Attributes:
        run_id: a random identifier, kept across resumes.
        fingerprint: :func:`run_fingerprint` of the config that started the run.
        defining: the flattened config parts the fingerprint covers (``{"model.embed_dim":
            32, ...}``), so that a refusal can name the keys that differ.
    """

    run_id: str
    fingerprint: str
    defining: dict[str, Any]


def defining_values(config: DictConfig) -> dict[str, Any]:
    """The config values that define a run, flattened to dotted keys.

    Args:
        config: the resolved recipe.
    """
    plain: Any = OmegaConf.to_container(config, resolve=True)
    train = plain["train"]
    tree = {"modalities": plain["modalities"], "model": plain["model"],
            "objective": plain["objective"],
            "data": {k: v for k, v in plain["data"].items()
                     if k not in ("num_workers", "pin_memory", "load_timeout")},
            "optim": plain["optim"],
            "train": {k: train[k] for k in ("seed", "grad_accum", "modality_dropout",
                                             "init_from", "init_from_logit_scale")
                      if k in train}}
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(tree, "")
    return flat


def run_fingerprint(config: DictConfig) -> str:
    """A hash of the parts of a config that define a run (what a resume must keep).

    Args:
        config: the resolved recipe.
    """
    text = json.dumps(defining_values(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changed_keys(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two :func:`defining_values`.

    A key only one side has (an option added or removed by an upgrade) counts as unchanged.

    Args:
        before: the recorded values.
        now: the current values.
    """
    return sorted(k for k in before.keys() & now.keys()
                  if json.dumps(before[k], default=str) != json.dumps(now[k], default=str))


class OutputLock:
    """An exclusive, process-lifetime lock on ``<output_dir>/.lock``.

    Args:
        output_dir: the run's folder (created if needed).
    """

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / LOCK_FILE
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AnymodalError` naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AnymodalError(
                f"{self.path.parent} is in use by another training run (pid {holder}); "
                "wait for it to finish or choose another train.output_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        """Drop the lock (the file stays; an unlocked file means no run holds the folder)."""
        if self.handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def _read_record(output_dir: Path) -> RunRecord | None:
    path = output_dir / RUN_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RunRecord(str(raw["run_id"]), str(raw["fingerprint"]),
                         dict(raw.get("defining", {})))
    except (ValueError, KeyError, TypeError):
        raise AnymodalError(f"{path} is damaged (expected JSON with run_id and fingerprint); "
                            "delete it or pass train.overwrite=true") from None


def _write_record(output_dir: Path, record: RunRecord) -> None:
    atomic_write_text(output_dir / RUN_FILE,
                      json.dumps({"run_id": record.run_id, "fingerprint": record.fingerprint,
                                  "updated": time.time(), "defining": record.defining},
                                 indent=2, default=str) + "\n")


def _holds_a_run(output_dir: Path) -> bool:
    return any((output_dir / name).exists() for name in RUN_FILES)


def _clear(output_dir: Path) -> None:
    for name in RUN_FILES:
        path = output_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def claim_output_dir(config: DictConfig, resuming: bool) -> RunRecord:
    """Check that this run may use ``train.output_dir`` and record its id.

    Called on the main process, with the folder's lock held.

    Args:
        config: the resolved recipe.
        resuming: ``train.resume`` is ``auto`` or a path.

    Returns:
        The run's record: the existing one when resuming the same run, else a new one.

    Raises:
        AnymodalError: the folder holds another run's files (fresh start without
            ``train.overwrite``), or ``resume=auto`` meets another run's checkpoints.
    """
    output_dir = Path(config.train.output_dir)
    defining = defining_values(config)
    existing = _read_record(output_dir)
    if resuming and existing is not None:
        changed = changed_keys(existing.defining, defining)
        if changed or (not existing.defining and existing.fingerprint != run_fingerprint(config)):
            raise AnymodalError(
                f"train.resume: {output_dir} holds run {existing.run_id}, started from a "
                f"different config ({', '.join(changed) or 'fingerprint differs'}); resume it "
                "with its own recipe, or choose another output_dir")
    if resuming and existing is not None:
        record = RunRecord(existing.run_id, run_fingerprint(config), defining)
    else:
        if not resuming and _holds_a_run(output_dir):
            if not config.train.overwrite:
                held = f" (run {existing.run_id})" if existing is not None else ""
                raise AnymodalError(
                    f"{output_dir} already holds a training run{held}; pass "
                    "train.resume=auto to continue it, train.overwrite=true to replace it, "
                    "or choose another train.output_dir")
            _clear(output_dir)
        record = RunRecord(uuid.uuid4().hex[:12], run_fingerprint(config), defining)
    _write_record(output_dir, record)
    return record


def withdraw_claim(output_dir: Path, run_id: str) -> None:
    """Take back ``run.json`` of a run that failed before it wrote anything else.

    A recipe whose model or data cannot be built then leaves the folder as it found it,
    so the corrected command is not refused as "already holds a training run". A run that
    wrote checkpoints, metrics or a model keeps its record (it can be resumed).

    Args:
        output_dir: the run's ``train.output_dir``.
        run_id: the id this run recorded; another run's record is never touched.
    """
    try:
        existing = _read_record(output_dir)
    except AnymodalError:
        return
    if existing is None or existing.run_id != run_id:
        return
    if any((output_dir / name).exists() for name in RUN_FILES if name != RUN_FILE):
        return
    (output_dir / RUN_FILE).unlink(missing_ok=True)
