"""Through the sample cache, a seeded epoch of audio, video and point clouds is the same.

The cache stores each modality's deterministic transform prefix (``ModalitySpec.prepare``)
and later epochs run only the random rest: the items must equal those made from the files,
bit for bit, in training and in evaluation (issue 16 item 1).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from omegaconf import OmegaConf

import anymodal
from anymodal.data.manifest import ManifestDataset
from anymodal.data.sample_cache import CachedLoad, decode_entry, with_sample_cache
from anymodal.types import ModalitySpec

OPTIONS: dict[str, dict[str, Any]] = {
    "audio": {"sample_rate": 16000, "clip_seconds": 0.5, "n_mels": 32, "eval_clips": 2},
    "video": {"size": 24, "num_frames": 4},
    "pointcloud": {"num_points": 64, "sampling": "voxel"},
}


class _Counting:
    def __init__(self, load: Any) -> None:
        self.load, self.calls = load, 0

    def __call__(self, source: Any) -> Any:
        self.calls += 1
        return self.load(source)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg executable is not installed: mp4 files cannot be written")
    from anymodal_video.synthetic import shapes_video_frames, write_mp4

    root = tmp_path_factory.mktemp("prefix_cache")
    rows = []
    for i in range(3):
        t = np.arange(round((1.3 + 0.4 * i) * 16000)) / 16000
        soundfile.write(root / f"{i}.wav", 0.3 * np.sin(2 * math.pi * (300 + 100 * i) * t),
                        16000)
        write_mp4(root / f"{i}.mp4",
                  shapes_video_frames(i % 2, torch.Generator().manual_seed(i), 12, 40, 56), 10.0)
        np.save(root / f"{i}.npy", np.random.default_rng(i).normal(size=(400, 3)).astype(
            np.float32))
        rows.append({"id": str(i), "audio": f"{i}.wav", "video": f"{i}.mp4",
                     "pointcloud": f"{i}.npy"})
    (root / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return root / "m.jsonl"


def _specs(cache_dir: Path | None) -> tuple[dict[str, ModalitySpec], dict[str, _Counting]]:
    specs, counts = {}, {}
    for key, options in OPTIONS.items():
        spec = anymodal.get_modality(key, **options)
        counts[key] = _Counting(spec.load)
        specs[key] = dataclasses.replace(spec, load=counts[key])
    if cache_dir is not None:
        specs = with_sample_cache(specs, OmegaConf.create({"dir": str(cache_dir)}))
    return specs, counts


def _epoch(dataset: ManifestDataset, seed: int) -> list[dict[str, torch.Tensor]]:
    items = []
    for index in range(len(dataset)):
        torch.manual_seed(seed * 1000 + index)
        items.append(dataset[index]["items"])
    return items


@pytest.mark.parametrize("train", [True, False])
def test_a_seeded_epoch_is_the_same_with_the_prefix_cache(manifest: Path, tmp_path: Path,
                                                          train: bool) -> None:
    plain_specs, _ = _specs(None)
    cached_specs, counts = _specs(tmp_path / "cache")
    plain = ManifestDataset(manifest, plain_specs, train=train, on_error="raise")
    cached = ManifestDataset(manifest, cached_specs, train=train, on_error="raise")
    for seed in range(3):  # epoch 0 fills the cache, 1 and 2 read it
        expected, got = _epoch(plain, seed), _epoch(cached, seed)
        for row_expected, row_got in zip(expected, got, strict=True):
            for key in OPTIONS:
                assert torch.equal(row_expected[key], row_got[key]), (seed, key)
    assert all(c.calls == 3 for c in counts.values())  # each file loaded once, then hits
    for key, name in (("audio", "0.wav"), ("video", "0.mp4"), ("pointcloud", "0.npy")):
        load = cached_specs[key].load
        assert isinstance(load, CachedLoad)
        entry = load.path_for(str((manifest.parent / name).resolve()))
        assert entry is not None and decode_entry(entry.read_bytes())[0] == "prepared"


def test_a_changed_option_of_the_random_part_still_misses(manifest: Path,
                                                          tmp_path: Path) -> None:
    """Every option is in the key, those of the random part too (kept simple, never stale)."""
    specs, counts = _specs(tmp_path / "cache")
    ManifestDataset(manifest, specs, train=True)[0]
    spec = anymodal.get_modality("audio", **{**OPTIONS["audio"], "time_mask": 5})
    other = _Counting(spec.load)
    wrapped = with_sample_cache({"audio": dataclasses.replace(spec, load=other)},
                                OmegaConf.create({"dir": str(tmp_path / "cache")}))
    ManifestDataset(manifest, wrapped, train=True)[0]
    assert counts["audio"].calls == 1 and other.calls == 1
