"""Encoder behaviour beyond the contract: invariances, grouping, clear shape errors."""

from __future__ import annotations

import pytest
import torch

import anymodal
from anymodal_pointcloud.encoders.pointbert import group_points


def _batch(b: int = 2, p: int = 128, c: int = 3) -> torch.Tensor:
    return torch.randn(b, p, c, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["pointcloud_pointnet", "pointcloud_pointbert_tiny"])
def test_point_order_does_not_matter_in_eval(name):
    torch.manual_seed(0)
    encoder = anymodal.create_encoder(name, width=32).eval()
    batch = _batch()
    # keep point 0 first: Point-BERT's sampling starts there; the rest may come in any order
    order = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(127)])
    with torch.no_grad():
        out, again = encoder(batch), encoder(batch[:, order])
    assert out.shape == (2, 32)
    torch.testing.assert_close(out, again, atol=1e-5, rtol=1e-4)


def test_groups_are_nearest_neighbours_around_fps_centres():
    points = _batch(1, 64, 6)
    patches, centres = group_points(points, num_groups=8, group_size=4)
    assert patches.shape == (1, 8, 4, 6) and centres.shape == (1, 8, 3)
    # the nearest neighbour of a centre is itself: offset zero
    assert torch.allclose(patches[0, :, 0, :3], torch.zeros(8, 3))
    # extra channels travel unchanged
    first = points[0, (points[0, :, :3] == centres[0, 0]).all(1)][0]
    torch.testing.assert_close(patches[0, 0, 0, 3:], first[3:])


@pytest.mark.parametrize("name", ["pointcloud_pointnet", "pointcloud_pointbert_tiny"])
def test_wrong_channel_count_names_the_param(name):
    encoder = anymodal.create_encoder(name)
    with pytest.raises(ValueError, match="in_channels"):
        encoder(_batch(c=6))


def test_pointbert_needs_enough_points():
    encoder = anymodal.create_encoder("pointcloud_pointbert_tiny", num_groups=32)
    with pytest.raises(ValueError, match="at least 32 points"):
        encoder(_batch(p=16))


def test_bad_encoder_param_is_a_config_error():
    with pytest.raises(anymodal.ConfigError, match="num_group"):
        anymodal.create_encoder("pointcloud_pointbert_tiny", num_group=8)
