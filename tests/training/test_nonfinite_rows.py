"""A finite input whose embedding is not finite (issue 14): a named bad row, not a lost step.

A vector of 3e38 passes the load-time check (it is finite) and overflows the encoder; before,
the step was skipped as a "non-finite loss" (the stop message blaming the learning rate)
and the row was never named.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from anymodal.config import load_config
from anymodal.errors import AnymodalError, DataError
from anymodal.training import train
from tests.conftest import vector_overrides


def _manifest(tmp_path: Path, loud: set[int]) -> Path:
    """24 rows of two vector modalities; rows in ``loud`` have ``a`` = 3e38 everywhere."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        for key in ("a", "b"):
            np.save(tmp_path / f"{key}{i}.npy", rng.normal(size=32).astype(np.float32))
        if i in loud:
            np.save(tmp_path / f"a{i}.npy", np.full(32, 3e38, dtype=np.float32))
        rows.append({"id": f"r{i}", "a": f"a{i}.npy", "b": f"b{i}.npy", "label": i % 4})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path: Path, manifest: Path, *extra: str):
    return load_config(None, [
        *vector_overrides(tmp_path), "data.train.kind=manifest", f"data.train.path={manifest}",
        "data.val=null", "train.max_steps=6", "train.max_nonfinite=2", *extra])


def _losses(run: Path) -> list[float]:
    return [r["train/loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text()
                                         .splitlines()) if "train/loss" in r]


@pytest.mark.parametrize("extra", [[], ["train.micro_batch=3"]], ids=["plain", "gradcache"])
def test_an_overflowing_row_is_named_and_left_out_of_the_loss(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, extra: list[str]) -> None:
    result = train(_config(tmp_path, _manifest(tmp_path, {5}), *extra))
    run = tmp_path / "run"
    assert result.step == 6
    bad = [json.loads(line) for line in (run / "bad_samples.jsonl").read_text().splitlines()]
    assert [b["id"] for b in bad] == ["r5"]  # once, although later epochs read it again
    assert "embedding of a (input max |x| = 3e+38)" in bad[0]["reason"]
    # Every step trained on the other rows: no skipped step, finite losses and weights.
    assert not [r for r in caplog.records if "non-finite loss" in r.getMessage()]
    losses = _losses(run)
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert all(torch.isfinite(w).all() for w in load_file(run / "model" /
                                                          "model.safetensors").values())


def test_an_overflowing_row_raises_under_on_error_raise(tmp_path: Path) -> None:
    config = _config(tmp_path, _manifest(tmp_path, {5}), "data.on_error=raise")
    with pytest.raises(DataError, match=r"row r5: embedding of a \(input max \|x\| = 3e\+38\)"):
        train(config)


def test_the_stop_message_names_the_rows_not_the_learning_rate(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # All rows but r0 overflow: no batch keeps two finite rows, so every step is skipped;
    # the run stops naming the rows (not "Lower optim.lr").
    manifest = _manifest(tmp_path, set(range(1, 24)))
    config = _config(tmp_path, manifest, "data.max_bad_fraction=1.0")
    caplog.set_level(logging.WARNING, "anymodal.training")
    with pytest.raises(AnymodalError, match=r"2 non-finite losses in a row") as caught:
        train(config)
    message = str(caught.value)
    assert "input max |x| = 3e+38" in message and "not the learning rate" in message
    assert "Lower optim.lr" not in message
