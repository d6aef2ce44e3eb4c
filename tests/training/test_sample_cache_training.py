"""Training through the sample cache: same losses as without it, entries read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.training import train
from tests.conftest import REPO
from tests.training import vector_files


def _overrides(tmp_path: Path, out: str, cache: Path | None) -> list[str]:
    manifest = vector_files.write_vector_manifest(tmp_path, labels=True)
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
    plain = vector_files.logged_losses(tmp_path / "plain")
    assert vector_files.logged_losses(tmp_path / "cached") == plain
    assert len(list(cache.rglob("*.safetensors"))) == 3 * vector_files.ROWS


@pytest.mark.slow
def test_two_launched_processes_read_one_cache(tmp_path: Path, cli_env: dict[str, str]
                                               ) -> None:
    cache = tmp_path / "cache"
    overrides = _overrides(tmp_path, "two", cache)
    vector_files.build_cache(overrides, cli_env)
    entries = vector_files.cache_entries(cache)
    assert len(entries) == 3 * vector_files.ROWS
    vector_files.train_two_processes(overrides, cli_env)
    # both processes only read: every entry is the one the build wrote
    assert vector_files.cache_entries(cache) == entries
    assert len(vector_files.logged_losses(tmp_path / "two")) == 12
