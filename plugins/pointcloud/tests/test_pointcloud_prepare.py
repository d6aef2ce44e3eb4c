"""The point cloud's cached prefix (normalised, deterministically sampled) gives the same items."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import anymodal
from anymodal.testing import check_prepared
from anymodal_pointcloud.transforms import PreparedCloud

CASES: list[tuple[dict[str, Any], bool]] = [
    ({"num_points": 64}, False),  # FPS from a random start: sampled every epoch
    ({"num_points": 64, "fps_start": "first"}, True),
    ({"num_points": 64, "sampling": "voxel", "use_normals": True}, True),
    ({"num_points": 64, "sampling": "random", "dropout_ratio": 0.3}, False),
    ({"num_points": 64, "use_colors": True, "fps_start": "first"}, True),
    ({"num_points": 600}, False),  # fewer points than asked: repeated
]


@pytest.mark.parametrize(("options", "sampled"), CASES)
def test_prepared_cloud_gives_the_same_items(options: dict[str, Any], sampled: bool) -> None:
    spec = anymodal.get_modality("pointcloud", **options)
    points = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    raw = spec.load(points.numpy())
    prepared = check_prepared(spec, raw)
    assert isinstance(prepared, PreparedCloud) and prepared.sampled == sampled
    if sampled and options.get("sampling", "fps") == "fps":
        assert prepared.features.shape[0] == options["num_points"]


def test_fps_start_first_samples_the_same_points_every_epoch() -> None:
    spec = anymodal.get_modality("pointcloud", num_points=32, fps_start="first", rotate=False,
                                 scale_min=1.0, scale_max=1.0, jitter_sigma=0.0)
    raw = spec.load(torch.randn(300, 3, generator=torch.Generator().manual_seed(1)).numpy())
    assert torch.equal(spec.transform(raw, True), spec.transform(raw, False))


def test_fps_start_is_validated() -> None:
    with pytest.raises(anymodal.ConfigError, match="fps_start"):
        anymodal.get_modality("pointcloud", fps_start="middle")
