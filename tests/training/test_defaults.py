"""Defaults that help: loader workers from the cores, and the data-wait fraction reported."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from anymodal.config import load_config
from anymodal.data.build import build_dataset, default_num_workers
from anymodal.data.synthetic import SyntheticDataset
from anymodal.model import MultiModalModel
from anymodal.training import train
from anymodal.training.loop import _cpu_threads
from tests.conftest import vector_overrides


def test_workers_default_from_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(None, vector_overrides(tmp_path))
    assert config.data.num_workers is None  # unset: the loop decides
    model = MultiModalModel(config)
    synthetic = build_dataset(config.data.train, model.modalities, True, "raise")
    assert default_num_workers(synthetic) == 0  # generated in microseconds: no worker

    files = torch.utils.data.TensorDataset(torch.zeros(4))  # any set that is not synthetic
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert default_num_workers(files, processes=1) == 2  # issue 20: 2 workers on 2 cores
    assert default_num_workers(files, processes=2) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_num_workers(files, processes=1) == 8  # capped
    # torch gets the cores the workers leave, at least one
    assert _cpu_threads(config, processes=1, workers=2) == 62
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert _cpu_threads(config, processes=1, workers=2) == 1


def test_the_summary_reports_the_time_spent_waiting_for_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = SyntheticDataset.__getitem__

    def slow(self, index):  # type: ignore[no-untyped-def]
        time.sleep(0.05)  # 8 rows: 0.4 s of loading per step, far more than the step
        return real(self, index)

    monkeypatch.setattr(SyntheticDataset, "__getitem__", slow)
    result = train(load_config(None, [*vector_overrides(tmp_path), "data.val=null",
                                      "train.max_steps=3"]))
    assert 0.5 < result.data_wait_fraction < 1.0
    out = capsys.readouterr().out
    assert "waiting for data" in out and "data-bound" in out
