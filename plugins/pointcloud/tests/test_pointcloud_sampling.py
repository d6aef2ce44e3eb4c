"""Farthest-point sampling, kNN and voxel grids against brute-force answers."""

from __future__ import annotations

import itertools

import pytest
import torch

from anymodal_pointcloud.sampling import (
    farthest_point_sample,
    farthest_point_sample_numpy,
    gather_points,
    knn,
    voxel_downsample,
    voxel_downsample_to,
)


def test_fps_on_a_line_picks_the_ends_then_the_middle():
    xyz = torch.zeros(11, 3)
    xyz[:, 0] = torch.arange(11.0)
    assert farthest_point_sample(xyz, 3, start=0).tolist() == [0, 10, 5]
    assert farthest_point_sample(xyz, 2, start=4).tolist() == [4, 10]


def test_fps_greedy_property_against_brute_force():
    xyz = torch.randn(2, 60, 3, generator=torch.Generator().manual_seed(0))
    idx = farthest_point_sample(xyz, 12, start=0)
    assert idx.shape == (2, 12)
    for b in range(2):
        assert len(set(idx[b].tolist())) == 12
        for i in range(1, 12):
            chosen = xyz[b, idx[b, :i]]
            nearest = torch.cdist(xyz[b], chosen).min(1).values
            assert nearest[idx[b, i]] == pytest.approx(float(nearest.max()))


def test_fps_fixed_start_is_deterministic_and_batch_independent():
    xyz = torch.randn(3, 100, 3, generator=torch.Generator().manual_seed(1))
    batched = farthest_point_sample(xyz, 20, start=0)
    assert torch.equal(batched, farthest_point_sample(xyz, 20, start=0))
    for b in range(3):
        assert torch.equal(batched[b], farthest_point_sample(xyz[b], 20, start=0))
    torch.manual_seed(0)
    random_start = farthest_point_sample(xyz, 20, start=None)
    assert random_start.shape == (3, 20)
    with pytest.raises(ValueError, match="cannot pick"):
        farthest_point_sample(xyz, 101)


@pytest.mark.parametrize("start", [0, 17])
def test_numpy_fps_gives_the_same_indices_as_torch(start):
    xyz = torch.randn(500, 3, generator=torch.Generator().manual_seed(3))
    fast = farthest_point_sample_numpy(xyz.numpy(), 64, start)
    assert fast.tolist() == farthest_point_sample(xyz, 64, start=start).tolist()
    with pytest.raises(ValueError, match="cannot pick"):
        farthest_point_sample_numpy(xyz.numpy(), 501)


def test_knn_matches_sorting_all_distances():
    g = torch.Generator().manual_seed(2)
    ref, query = torch.randn(2, 50, 3, generator=g), torch.randn(2, 7, 3, generator=g)
    idx = knn(query, ref, 5)
    expected = torch.cdist(query, ref).argsort(-1)[..., :5]
    assert torch.equal(idx, expected)
    patches = gather_points(ref, idx)
    assert patches.shape == (2, 7, 5, 3)
    assert torch.equal(patches[1, 3, 0], ref[1, idx[1, 3, 0]])


def test_voxel_downsample_averages_each_cell():
    points = torch.tensor([[0.1, 0.1, 0.1, 1.0], [0.3, 0.2, 0.1, 3.0], [1.5, 0.1, 0.1, 5.0]])
    down = voxel_downsample(points, 1.0)
    torch.testing.assert_close(down, torch.tensor([[0.2, 0.15, 0.1, 2.0], [1.5, 0.1, 0.1, 5.0]]))


def test_voxel_downsample_to_keeps_at_least_the_target():
    grid = torch.tensor(list(itertools.product(range(12), repeat=3)), dtype=torch.float32)
    for target in (10, 200, 1000):
        down = voxel_downsample_to(grid, target)
        assert target <= down.shape[0] <= grid.shape[0]
    assert voxel_downsample_to(grid, 200).shape[0] < grid.shape[0]
