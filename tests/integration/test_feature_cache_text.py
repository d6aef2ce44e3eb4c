"""The feature cache with the pretrained text tower (text_minilm, frozen): needs the text plugin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anymodal.config import load_config
from anymodal.errors import ConfigError
from anymodal.training import train

ROWS = 16
CAPTIONS = ["a red circle", "a small blue square", "the triangle is green",
            "a large yellow ring near the corner", "purple cross", "a cyan diamond on grey"]


def _write(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(ROWS):
        np.save(folder / f"v{i}.npy", rng.normal(size=32).astype(np.float32))
        # repeated captions: one entry each, read by every row that has it
        rows.append({"id": f"r{i}", "text": f"{CAPTIONS[i % 6]} number {i % 3}",
                     "vec": f"v{i}.npy"})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def _overrides(folder: Path, out: str, cache: Path | None, *extra: str) -> list[str]:
    items = ["modalities.text.encoder=text_minilm", "modalities.text.freeze=true",
             "modalities.vec.modality=vector", "modalities.vec.options.dim=32",
             "modalities.vec.params.width=32", "modalities.vec.params.hidden=32",
             "model.embed_dim=16", "objective.name=clip", "data.val=null",
             "data.train.kind=manifest", f"data.train.path={folder / 'train.jsonl'}",
             "data.batch_size=4", "data.num_workers=0", f"train.output_dir={folder / out}",
             "train.max_steps=8", "train.log_every=1", "train.eval_every=0",
             "train.checkpoint_every=0", "logging.progress=false", *extra]
    return items + ([] if cache is None else [f"data.feature_cache.dir={cache}"])


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text()
            .splitlines() if "train/loss" in line]


def test_minilm_features_are_computed_once_and_train_the_same(tmp_path: Path) -> None:
    _write(tmp_path)
    cache = tmp_path / "features"
    train(load_config(None, _overrides(tmp_path, "plain", None)))
    train(load_config(None, _overrides(tmp_path, "cached", cache)))
    plain, cached = _losses(tmp_path / "plain"), _losses(tmp_path / "cached")
    assert len(plain) == len(cached) == 8  # two epochs: the second reads the cache
    # a caption's MiniLM feature moves in its last float32 bits with the batch around it
    # (another padded length): the cached run uses the first batch's, so differences are
    # of that size, never more (benchmarks/results/feature_cache.md measures both)
    assert max(abs(a - b) for a, b in zip(plain, cached)) < 1e-5
    distinct = {f"{CAPTIONS[i % 6]} number {i % 3}" for i in range(ROWS)}
    assert len(list(cache.rglob("*.safetensors"))) == len(distinct)


def test_a_text_crop_in_training_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    # max_length 8 byte tokens: every caption overflows, random_crop picks a window
    config = load_config(None, _overrides(tmp_path, "crop", tmp_path / "features",
                                          "modalities.text.options.max_length=8"))
    with pytest.raises(ConfigError, match=r"modality 'text' has a random training transform"):
        train(config)
