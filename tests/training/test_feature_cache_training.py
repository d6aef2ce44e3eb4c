"""Training through the frozen-feature cache: the same losses, the frozen tower run once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from anymodal.config import load_config
from anymodal.training import train
from tests.conftest import PYTHON, REPO

ROWS = 32


def _manifest(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(ROWS):
        for key in "abc":
            np.save(folder / f"{key}{i}.npy", rng.normal(size=32).astype(np.float32))
        rows.append({"id": f"r{i}", "a": f"a{i}.npy", "b": f"b{i}.npy", "c": f"c{i}.npy"})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


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


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text()
            .splitlines() if "train/loss" in line]


@pytest.mark.parametrize("workers", [0, 1])
def test_training_with_the_feature_cache_matches_training_without(tmp_path: Path,
                                                                  workers: int) -> None:
    _manifest(tmp_path)
    cache = tmp_path / "features"
    recipe = REPO / "recipes/smoke_clip.yaml"
    train(load_config(recipe, _overrides(tmp_path, "plain", None, workers=workers)))
    train(load_config(recipe, _overrides(tmp_path, "cached", cache, workers=workers)))
    # 20 steps of 8 rows: 5 epochs of 32 rows, the last four served from the cache
    plain, cached = _losses(tmp_path / "plain"), _losses(tmp_path / "cached")
    assert len(plain) == len(cached) == 20
    assert len(list(cache.rglob("*.safetensors"))) == ROWS
    # An item's feature is stored by the batch that first encoded it, and every later
    # batch reads that one, even batches loaded ahead before it was stored.
    assert cached == plain


@pytest.mark.slow
def test_two_launched_processes_read_one_feature_cache(tmp_path: Path,
                                                        cli_env: dict[str, str]) -> None:
    _manifest(tmp_path)
    cache = tmp_path / "features"
    overrides = _overrides(tmp_path, "two", cache, steps=8)
    built = subprocess.run([PYTHON, "-m", "anymodal", "cache", "build", "recipes/smoke_clip.yaml",
                            *overrides, "--no-progress", "--json"], cwd=REPO, env=cli_env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    report = json.loads(built.stdout)
    assert report["feature_build"]["computed"] == ROWS
    assert report["features"]["a"]["hits"] == ROWS
    entries = {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")}
    assert len(entries) == ROWS
    launched = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "-m", "anymodal", "train", "recipes/smoke_clip.yaml", *overrides],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    # both processes only read: every entry is the one the build wrote, none was added
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")} == entries
    assert len(_losses(tmp_path / "two")) == 8
