"""The transform: unit sphere, fixed point count, eval determinism, augmentation."""

from __future__ import annotations

import math

import pytest
import torch

import anymodal
from anymodal_pointcloud.config import PointCloudConfig
from anymodal_pointcloud.io import RawPointCloud
from anymodal_pointcloud.transforms import augment, rotation_about, transform_pointcloud


def _raw(n: int, seed: int = 0, normals: bool = True) -> RawPointCloud:
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(n, 3, generator=g) * torch.tensor([3.0, 1.0, 0.5]) + 7.0
    unit = torch.randn(n, 3, generator=g)
    unit = unit / unit.norm(dim=1, keepdim=True)
    return RawPointCloud(points, torch.rand(n, 3, generator=g), unit if normals else None,
                         "<test cloud>")


@pytest.mark.parametrize("sampling", ["fps", "voxel", "random"])
@pytest.mark.parametrize("n", [50, 128, 700])
def test_fixed_count_unit_sphere_and_eval_determinism(sampling, n):
    config = PointCloudConfig(num_points=128, sampling=sampling, use_colors=True,
                              use_normals=True)
    raw = _raw(n)
    item = transform_pointcloud(raw, False, config)
    assert item.shape == (128, 9) and item.dtype == torch.float32
    assert item[:, :3].norm(dim=1).max() <= 1.0 + 1e-5
    torch.testing.assert_close(item[:, 6:].norm(dim=1), torch.ones(128), atol=1e-4, rtol=0)
    assert torch.equal(item, transform_pointcloud(raw, False, config))
    if sampling != "voxel":  # voxel averages; the others keep original points
        centred = raw.points - raw.points.mean(0)
        scaled = centred / centred.norm(dim=1).max()
        distance = torch.cdist(item[:, :3], scaled, compute_mode="donot_use_mm_for_euclid_dist")
        distance = distance.min(1).values
        assert distance.max() < 1e-5


def test_fps_spreads_points_better_than_random():
    raw = _raw(2000, seed=3, normals=False)
    spread = {}
    for sampling in ("fps", "random"):
        item = transform_pointcloud(raw, False, PointCloudConfig(num_points=64,
                                                                 sampling=sampling))
        d = torch.cdist(item, item) + torch.eye(64) * 10
        spread[sampling] = d.min(1).values.mean()
    assert spread["fps"] > 1.5 * spread["random"]


def test_training_augments_and_eval_does_not():
    config = PointCloudConfig(num_points=128, use_normals=True)
    raw = _raw(300)
    torch.manual_seed(0)
    a = transform_pointcloud(raw, True, config)
    b = transform_pointcloud(raw, True, config)
    assert a.shape == (128, 6) and not torch.equal(a, b)
    torch.testing.assert_close(a[:, 3:].norm(dim=1), torch.ones(128), atol=1e-4, rtol=0)


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_rotation_keeps_the_up_coordinate(axis):
    config = PointCloudConfig(num_points=64, up_axis=axis, scale_min=1.0, scale_max=1.0,
                              jitter_sigma=0.0, use_normals=True)
    item = transform_pointcloud(_raw(64), False, config)
    torch.manual_seed(1)
    turned = augment(item, config)
    u = "xyz".index(axis)
    torch.testing.assert_close(turned[:, u], item[:, u])
    torch.testing.assert_close(turned[:, :3].norm(dim=1), item[:, :3].norm(dim=1))
    # normals turn with the points: angles between points and their normals are kept
    torch.testing.assert_close((turned[:, :3] * turned[:, 3:]).sum(1),
                               (item[:, :3] * item[:, 3:]).sum(1), atol=1e-5, rtol=0)
    rot = rotation_about(axis, math.pi / 2)
    assert torch.det(rot) == pytest.approx(1.0)
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-6)


def test_scale_jitter_and_dropout():
    item = transform_pointcloud(_raw(64), False, PointCloudConfig(num_points=64))
    scaled = augment(item, PointCloudConfig(rotate=False, scale_min=2.0, scale_max=2.0,
                                            jitter_sigma=0.0))
    torch.testing.assert_close(scaled, item * 2)
    jittered = augment(item, PointCloudConfig(rotate=False, scale_min=1.0, scale_max=1.0,
                                              jitter_sigma=1.0, jitter_clip=0.02))
    assert (jittered - item).abs().max() <= 0.02 + 1e-6
    torch.manual_seed(0)
    dropped = augment(item, PointCloudConfig(rotate=False, scale_min=1.0, scale_max=1.0,
                                             jitter_sigma=0.0, dropout_ratio=0.9))
    replaced = (dropped == item[0]).all(1)
    assert dropped.shape == item.shape and replaced.sum() > 1


def test_coincident_points_raise_data_error():
    raw = RawPointCloud(torch.ones(10, 3), None, None, "flat.npy")
    with pytest.raises(anymodal.DataError, match=r"flat\.npy: all 10 points coincide"):
        transform_pointcloud(raw, False, PointCloudConfig(num_points=8))


@pytest.mark.parametrize("params", [{"sampling": "grid"}, {"mesh_sampling": "dense"},
                                    {"up_axis": "w"}, {"num_points": 0},
                                    {"scale_min": 2.0, "scale_max": 1.0},
                                    {"dropout_ratio": 1.0}])
def test_bad_options_raise_config_error(params):
    with pytest.raises(anymodal.ConfigError, match="pointcloud"):
        anymodal.get_modality("pointcloud", **params)
