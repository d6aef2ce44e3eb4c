"""A finite input whose embedding is not finite (issue 14): a named bad row, not a lost step.

A vector of 3e38 passes the load-time check (it is finite) and overflows the encoder; before,
the step was skipped as a "non-finite loss" (the stop message blaming the learning rate)
and the row was never named.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from anymodal.errors import AnymodalError, DataError
from anymodal.training import train
from tests.conftest import PYTHON, REPO
from tests.training.vector_files import (
    logged_losses,
    manifest_config,
    vector_rows,
    write_manifest,
)


def _manifest(tmp_path: Path, loud: set[int]) -> Path:
    """24 rows of two vector modalities; rows in ``loud`` have ``a`` = 3e38 everywhere."""
    rows = vector_rows(tmp_path, 24, keys="ab", labels=True)
    for i in loud:
        np.save(tmp_path / f"a{i}.npy", np.full(32, 3e38, dtype=np.float32))
    return write_manifest(tmp_path, rows)


def _config(tmp_path: Path, manifest: Path, *extra: str):
    return manifest_config(tmp_path, manifest, "train.max_steps=6", "train.max_nonfinite=2",
                           *extra)


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
    losses = logged_losses(run)
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


@pytest.mark.slow
def test_two_processes_agree_on_an_overflowing_row(tmp_path: Path,
                                                   cli_env: dict[str, str]) -> None:
    # Only the process whose batch holds r5 cuts a row; the bad-row count travels in the
    # loss all-reduce, so neither process waits for the other and both step together.
    manifest = _manifest(tmp_path, {5})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "overflow", "model": {"embed_dim": 16}, "objective": {"name": "clip"},
        "modalities": {k: {"modality": "vector", "params": {"width": 32, "hidden": 32}}
                       for k in ("a", "b")},
        "data": {"train": {"kind": "manifest", "path": str(manifest)}, "val": None,
                 "batch_size": 4},
        "train": {"max_steps": 4, "log_every": 1, "eval_every": 0, "checkpoint_every": 0,
                  "output_dir": str(tmp_path / "run")},
        "logging": {"progress": False}}))
    done = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "-m", "anymodal", "train", str(recipe)],
        cwd=REPO, env={**cli_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    bad = [json.loads(line) for line in
           (tmp_path / "run" / "bad_samples.jsonl").read_text().splitlines()]
    assert {b["id"] for b in bad} == {"r5"} and "3e+38" in bad[0]["reason"]
    losses = logged_losses(tmp_path / "run")
    assert len(losses) == 4 and all(np.isfinite(losses))
