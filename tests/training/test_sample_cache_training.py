"""Training through the sample cache: same losses as without it, entries read back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.training import train
from tests.conftest import PYTHON, REPO
from tests.training.vector_files import ROWS, logged_losses, write_vector_manifest


def _overrides(tmp_path: Path, out: str, cache: Path | None) -> list[str]:
    manifest = write_vector_manifest(tmp_path, labels=True)
    items = ["data.val=null", "data.batch_size=8", "data.num_workers=1",
             "data.train.kind=manifest", f"data.train.path={manifest}",
             f"train.output_dir={tmp_path / out}", "train.max_steps=12", "train.log_every=1",
             "train.eval_every=0", "train.checkpoint_every=0", "logging.progress=false"]
    return items + ([] if cache is None else [f"data.cache.dir={cache}"])


def test_training_with_the_cache_matches_training_without(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    train(load_config(REPO / "recipes/smoke_clip.yaml", _overrides(tmp_path, "plain", None)))
    train(load_config(REPO / "recipes/smoke_clip.yaml", _overrides(tmp_path, "cached", cache)))
    # 12 steps of 8 rows: 3 epochs of 32 rows, the last two read from the cache
    assert logged_losses(tmp_path / "cached") == logged_losses(tmp_path / "plain")
    assert len(list(cache.rglob("*.safetensors"))) == 3 * ROWS


@pytest.mark.slow
def test_two_launched_processes_read_one_cache(tmp_path: Path, cli_env: dict[str, str]
                                               ) -> None:
    cache = tmp_path / "cache"
    overrides = _overrides(tmp_path, "two", cache)
    built = subprocess.run([PYTHON, "-m", "anymodal", "cache", "build", "recipes/smoke_clip.yaml",
                            *overrides, "--no-progress", "--json"], cwd=REPO, env=cli_env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    entries = {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")}
    assert len(entries) == 3 * ROWS
    launched = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "-m", "anymodal", "train", "recipes/smoke_clip.yaml", *overrides],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    # both processes only read: every entry is the one the build wrote
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")} == entries
    assert len(logged_losses(tmp_path / "two")) == 12
