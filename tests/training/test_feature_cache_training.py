"""Training through the frozen-feature cache: the same losses, the frozen tower run once."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.training import train
from tests.conftest import REPO
from tests.training import vector_files


def _overrides(folder: Path, out: str, cache: Path | None, steps: int = 20,
               workers: int = 1) -> list[str]:
    """The smoke recipe on files, ``a`` frozen (its features cached when ``cache``).

    One thread: a row's feature then does not depend on the other rows of its batch, so
    the stored features are bit for bit those the run without the cache computes.
    """
    items = ["data.val=null", "data.batch_size=8", f"data.num_workers={workers}",
             "data.train.kind=manifest", f"data.train.path={folder / 'train.jsonl'}",
             "modalities.a.freeze=true",
             f"train.output_dir={folder / out}", f"train.max_steps={steps}",
             "train.log_every=1", "train.eval_every=0", "train.checkpoint_every=0",
             "logging.progress=false", "train.threads=1"]
    return items + ([] if cache is None else [f"data.feature_cache.dir={cache}"])


@pytest.mark.parametrize("workers", [0, 1])
def test_training_with_the_feature_cache_matches_training_without(tmp_path: Path,
                                                                  workers: int) -> None:
    vector_files.write_vector_manifest(tmp_path)
    cache = tmp_path / "features"
    recipe = REPO / "recipes/smoke_clip.yaml"
    train(load_config(recipe, _overrides(tmp_path, "plain", None, workers=workers)))
    train(load_config(recipe, _overrides(tmp_path, "cached", cache, workers=workers)))
    # 20 steps of 8 rows: 5 epochs of 32 rows, the last four served from the cache
    plain = vector_files.logged_losses(tmp_path / "plain")
    cached = vector_files.logged_losses(tmp_path / "cached")
    assert len(plain) == len(cached) == 20
    assert len(list(cache.rglob("*.safetensors"))) == vector_files.ROWS
    # An item's feature is stored by the batch that first encoded it, and every later
    # batch reads that one, even batches loaded ahead before it was stored.
    assert cached == plain


@pytest.mark.slow
def test_two_launched_processes_read_one_feature_cache(tmp_path: Path,
                                                        cli_env: dict[str, str]) -> None:
    vector_files.write_vector_manifest(tmp_path)
    cache = tmp_path / "features"
    overrides = _overrides(tmp_path, "two", cache, steps=8)
    report = vector_files.build_cache(overrides, cli_env)
    assert report["feature_build"]["computed"] == vector_files.ROWS
    assert report["features"]["a"]["hits"] == vector_files.ROWS
    entries = vector_files.cache_entries(cache)
    assert len(entries) == vector_files.ROWS
    vector_files.train_two_processes(overrides, cli_env)
    # both processes only read: every entry is the one the build wrote, none was added
    assert vector_files.cache_entries(cache) == entries
    assert len(vector_files.logged_losses(tmp_path / "two")) == 8
