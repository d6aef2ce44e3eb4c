"""The training bar in a log file or a pipe: a handful of redraws, not one per step."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.training import train
from tests.conftest import vector_overrides


def test_a_non_tty_log_gets_few_redraws(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_PROGRESS_SECONDS", "30")
    overrides = [*vector_overrides(tmp_path), "train.max_steps=40", "train.log_every=10",
                 "logging.progress=true", "train.eval_every=0", "train.checkpoint_every=0"]
    train(load_config(None, overrides))
    err = capsys.readouterr().err
    redraws = err.count("step/s") + err.count("s/step")
    # tqdm draws once at the start and once at the end; 40 steps of a few ms each fit in
    # one 30 s interval, so anything near 40 means every step redraws (set_postfix did).
    assert 1 <= redraws <= 4, err[-2000:]
