"""Checkpoints: complete only when every listed file checks out, fallback to the newest
valid one, crash-safe writes and deletes, written once, umask permissions."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from anymodal.errors import ArtifactError
from anymodal.training.checkpoint import (
    TrainerState,
    complete_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tests.fault_injection import every_kill_point, race


def _accelerator() -> tuple[Accelerator, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    acc = Accelerator(cpu=True)
    model, optimizer = acc.prepare(model, optimizer)
    return acc, model


def _save(acc: Accelerator, out: Path, step: int, keep: int = 5) -> Path:
    return save_checkpoint(acc, out, TrainerState(step=step, batches_seen=step), keep)


def test_a_checkpoint_lists_and_checksums_every_file(tmp_path: Path) -> None:
    acc, _ = _accelerator()
    path = _save(acc, tmp_path, 2)
    manifest = json.loads((path / "checkpoint.json").read_text())
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"checkpoint.json"}
    assert "trainer_state.json" in manifest["files"]
    assert load_checkpoint(acc, path) == TrainerState(step=2, batches_seen=2)


@pytest.mark.parametrize("damage", ["weights_missing", "state_truncated", "bit_flip",
                                    "no_manifest"])
def test_resume_auto_falls_back_to_the_newest_valid_checkpoint(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    # issue 14: a step_20 without weights blocked every resume although step_18 was fine.
    acc, _ = _accelerator()
    _save(acc, tmp_path, 18)
    newest = _save(acc, tmp_path, 20)
    weights = next(newest.glob("*.safetensors"))
    if damage == "weights_missing":
        weights.unlink()
    elif damage == "state_truncated":
        text = (newest / "trainer_state.json").read_text()
        (newest / "trainer_state.json").write_text(text[:10])
    elif damage == "bit_flip":
        raw = bytearray(weights.read_bytes())
        raw[-3] ^= 0x10
        weights.write_bytes(bytes(raw))
    else:
        (newest / "checkpoint.json").unlink()
    with caplog.at_level(logging.WARNING, logger="anymodal.training"):
        assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_18"
    assert "step_20 skipped" in caplog.text
    with pytest.raises(ArtifactError, match="step_20"):
        load_checkpoint(acc, newest)


def test_no_valid_checkpoint_gives_none(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / "step_4").mkdir(parents=True)
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "elsewhere") is None


def test_the_same_state_is_not_written_twice(tmp_path: Path) -> None:
    # issue 14: a run ending on a checkpoint step saved step_N twice (rmtree, then rename).
    acc, _ = _accelerator()
    first = _save(acc, tmp_path, 4)
    inode = first.stat().st_ino
    assert _save(acc, tmp_path, 4) == first
    assert first.stat().st_ino == inode


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    acc, _ = _accelerator()
    for step in (1, 2, 3, 4):
        _save(acc, tmp_path, step, keep=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step_3", "step_4"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


def test_a_kill_at_any_rename_or_delete_leaves_a_resumable_run(tmp_path: Path) -> None:
    # issue 14: a kill inside the second save's rmtree left a step_N without weights.
    acc, model = _accelerator()
    pristine = tmp_path / "pristine"
    _save(acc, pristine, 1, keep=5)
    _save(acc, pristine, 2, keep=5)
    run = tmp_path / "run"
    shutil.copytree(pristine, run)

    def write() -> None:  # replace step 2 (other weights), add step 3, rotate to keep one
        with torch.no_grad():
            model.weight.add_(1.0)
        save_checkpoint(acc, run, TrainerState(step=2, samples_seen=1), 5)
        _save(acc, run, 3, keep=1)

    points = 0
    for _ in every_kill_point(write):
        points += 1
        found = latest_checkpoint(run)
        assert found is not None and found.name in ("step_2", "step_3")
        load_checkpoint(acc, found)
        assert [p.name for p in (run / "checkpoints").iterdir() if p.name[0] == "."] == []
        shutil.rmtree(run)
        shutil.copytree(pristine, run)
    assert points >= 15


def test_two_processes_saving_the_same_step_leave_a_valid_checkpoint(tmp_path: Path) -> None:
    acc, model = _accelerator()

    def saves(shift: float) -> None:
        with torch.no_grad():
            model.weight.add_(shift)
        for step in range(5):
            save_checkpoint(acc, tmp_path, TrainerState(step=7, samples_seen=step), 2)

    race([lambda: saves(1.0), lambda: saves(2.0)])
    found = latest_checkpoint(tmp_path)
    assert found is not None and load_checkpoint(acc, found).step == 7


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_checkpoint_files_get_the_umask_permissions(tmp_path: Path, mask: int) -> None:
    acc, _ = _accelerator()
    old = os.umask(mask)
    try:
        path = _save(acc, tmp_path, 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~mask
    for file in path.rglob("*"):
        if file.is_file():
            assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~mask, file.name


def test_train_resumes_from_the_previous_checkpoint_when_the_newest_is_damaged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # issue 14: a step_N without weights made every later resume=auto die with
    # FileNotFoundError, although the complete step before it was on disk.
    from anymodal.config import load_config
    from anymodal.training import train
    from tests.conftest import vector_overrides

    overrides = vector_overrides(tmp_path, **{"train.checkpoint_every": 2, "train.keep": 3,
                                              "data.val": "null"})
    train(load_config(None, overrides))
    steps = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in steps.iterdir()) == ["step_2", "step_4"]
    next((steps / "step_4").glob("*.safetensors")).unlink()  # as a kill mid-delete left it
    with caplog.at_level(logging.WARNING, logger="anymodal.training"):
        result = train(load_config(None, [*overrides, "train.resume=auto",
                                          "train.max_steps=6"]))
    assert "step_4 skipped" in caplog.text
    assert result.step == 6
    assert latest_checkpoint(tmp_path / "run") == steps / "step_6"
