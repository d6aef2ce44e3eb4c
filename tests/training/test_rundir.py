"""A run owns its output folder: lock, run id, no adoption of another run, no silent mixing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.errors import AnymodalError
from anymodal.training import train
from anymodal.training.rundir import OutputLock, run_fingerprint
from tests.conftest import vector_overrides


def _config(tmp_path: Path, *extra: str):
    return load_config(None, [*vector_overrides(tmp_path), "data.val=null",
                              "train.max_steps=2", "train.checkpoint_every=1", *extra])


def _run_id(tmp_path: Path) -> str:
    return json.loads((tmp_path / "run" / "run.json").read_text())["run_id"]


def test_a_second_run_is_refused_while_the_folder_is_locked(tmp_path: Path) -> None:
    holder = OutputLock(tmp_path / "run")
    holder.acquire()
    try:
        with pytest.raises(AnymodalError, match=rf"in use by another training run \(pid "
                                                rf"{os.getpid()}\)"):
            train(_config(tmp_path))
    finally:
        holder.release()
    train(_config(tmp_path))  # released: the folder is free again
    # The run released its own lock when it ended.
    again = OutputLock(tmp_path / "run")
    again.acquire()
    again.release()


def test_a_fresh_run_in_a_used_folder_needs_overwrite(tmp_path: Path) -> None:
    train(_config(tmp_path))
    first = _run_id(tmp_path)
    with pytest.raises(AnymodalError, match=rf"already holds a training run \(run {first}\).*"
                                            r"train.overwrite=true"):
        train(_config(tmp_path))
    (tmp_path / "run" / "notes.txt").write_text("mine")
    train(_config(tmp_path, "train.overwrite=true", "train.max_steps=1"))
    assert _run_id(tmp_path) != first
    # The old run's checkpoints are gone (step_2 could otherwise be resumed by mistake),
    # the old metrics do not interleave, and files the run did not write are kept.
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_1"]
    steps = [json.loads(x)["step"] for x in
             (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_resume_auto_continues_only_its_own_run(tmp_path: Path) -> None:
    train(_config(tmp_path))
    first = _run_id(tmp_path)
    resumed = train(_config(tmp_path, "train.resume=auto", "train.max_steps=3"))
    assert resumed.step == 3 and _run_id(tmp_path) == first  # the budget may grow
    with pytest.raises(AnymodalError, match=rf"holds run {first}, started from a different "
                                            r"config \(train.seed\)"):
        train(_config(tmp_path, "train.resume=auto", "train.max_steps=4", "train.seed=7"))
    with pytest.raises(AnymodalError, match=r"different config \(objective.name\)"):
        train(_config(tmp_path, "train.resume=auto", "objective.name=siglip"))


def test_an_option_added_by_an_upgrade_does_not_block_a_resume() -> None:
    from anymodal.training.rundir import changed_keys

    before = {"model.embed_dim": 32, "optim.lr": 0.001}
    assert changed_keys(before, {**before, "data.new_option": 1}) == []
    assert changed_keys(before, {**before, "optim.lr": 0.01}) == ["optim.lr"]


def test_the_fingerprint_ignores_budget_cadence_and_workers(tmp_path: Path) -> None:
    base = run_fingerprint(_config(tmp_path))
    assert run_fingerprint(_config(tmp_path, "train.max_steps=9", "train.log_every=3",
                                   "data.num_workers=2", "logging.progress=true")) == base
    assert run_fingerprint(_config(tmp_path, "optim.lr=0.5")) != base
    assert run_fingerprint(_config(tmp_path, "train.modality_dropout.p=0.5")) != base


def test_a_run_that_fails_to_build_leaves_no_record(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipe whose data cannot be read fails before the first step; the corrected
    command then starts in the same folder without train.overwrite."""
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(Exception, match=r"missing\.jsonl"):
        train(_config(tmp_path, "data.train.kind=manifest", f"data.train.path={missing}"))
    assert not (tmp_path / "run" / "run.json").exists()
    train(_config(tmp_path))  # not refused as "already holds a training run"
    first = _run_id(tmp_path)
    # A resume that fails to build keeps the record of the run it resumes (it has
    # checkpoints and can be resumed once the recipe is fixed).
    def fail(*args: object) -> None:
        raise RuntimeError("the build failed")

    monkeypatch.setattr("anymodal.training.loop._build", fail)
    with pytest.raises(RuntimeError, match="the build failed"):
        train(_config(tmp_path, "train.resume=auto", "train.max_steps=3"))
    assert _run_id(tmp_path) == first
