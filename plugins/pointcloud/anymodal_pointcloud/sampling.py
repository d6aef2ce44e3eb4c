"""Point sampling and grouping in plain PyTorch: farthest points, kNN, voxel grids.

These run on any device and need no compiled extension (pointnet2_ops, pytorch3d): the
clouds of this plugin are small (``P`` of a few thousand), where a Python loop over the
``k`` picks of farthest-point sampling, each a vectorised distance update, is fast enough.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "farthest_point_sample",
    "farthest_point_sample_numpy",
    "gather_points",
    "knn",
    "voxel_downsample",
    "voxel_downsample_to",
]


@torch.no_grad()
def farthest_point_sample(
    xyz: torch.Tensor, k: int, start: torch.Tensor | int | None = 0
) -> torch.Tensor:
    """Indices of ``k`` points chosen greedily, each the farthest from those already chosen.

    Batched and on any device: the encoders call it on ``[B, P, 3]`` batches. For one
    cloud on the CPU (the data pipeline), :func:`farthest_point_sample_numpy` gives the
    same indices several times faster.

    Args:
        xyz: coordinates, ``[B, N, 3]`` or ``[N, 3]``.
        k: how many to pick (``k <= N``).
        start: index of the first pick: an int (the same for every cloud), a LongTensor
            ``[B]``, or ``None`` for a random start (training). A fixed start makes the
            result a deterministic function of the input.

    Returns:
        LongTensor ``[B, k]`` (or ``[k]`` for an unbatched input).

    Shapes:
        xyz: ``[B, N, 3]`` -> ``[B, k]``.
    """
    unbatched = xyz.dim() == 2
    if unbatched:
        xyz = xyz.unsqueeze(0)
    b, n, _ = xyz.shape
    if not 0 < k <= n:
        raise ValueError(f"farthest_point_sample: cannot pick k={k} of {n} points")
    if start is None:
        farthest = torch.randint(0, n, (b,), device=xyz.device)
    elif isinstance(start, int):
        farthest = torch.full((b,), start, dtype=torch.long, device=xyz.device)
    else:
        farthest = start.to(device=xyz.device, dtype=torch.long)
    coords = xyz.float().transpose(1, 2).contiguous()  # [B, 3, N]: contiguous rows per axis
    picked = torch.empty(b, k, dtype=torch.long, device=xyz.device)
    nearest = torch.full((b, n), float("inf"), device=xyz.device)
    for i in range(k):
        picked[:, i] = farthest
        centre = torch.gather(coords, 2, farthest.view(b, 1, 1).expand(b, 3, 1))  # [B, 3, 1]
        diff = coords - centre
        nearest = torch.minimum(nearest, (diff * diff).sum(1))
        farthest = nearest.argmax(-1)
    return picked[0] if unbatched else picked


def farthest_point_sample_numpy(xyz: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """:func:`farthest_point_sample` of one cloud, in numpy (same indices, same ties).

    The greedy loop makes ``k`` passes over the cloud; for one cloud on the CPU, numpy's
    per-call overhead is a fraction of torch's, which dominates at these sizes
    (10,000 -> 1,024 points: about 40 ms against 250 ms).

    Shapes:
        xyz: ``[N, 3]`` -> int64 ``[k]``.
    """
    n = xyz.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"farthest_point_sample: cannot pick k={k} of {n} points")
    x, y, z = np.ascontiguousarray(xyz.T, dtype=np.float32)
    nearest = np.full(n, np.inf, dtype=np.float32)
    dist, tmp = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    picked = np.empty(k, dtype=np.int64)
    farthest = int(start)
    for i in range(k):
        picked[i] = farthest
        np.subtract(x, x[farthest], out=dist)
        np.multiply(dist, dist, out=dist)
        np.subtract(y, y[farthest], out=tmp)
        dist += tmp * tmp
        np.subtract(z, z[farthest], out=tmp)
        dist += tmp * tmp
        np.minimum(nearest, dist, out=nearest)
        farthest = int(nearest.argmax())
    return picked


@torch.no_grad()
def knn(query: torch.Tensor, ref: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` points of ``ref`` nearest to each point of ``query``.

    Exact distances (no matrix-product shortcut), so that ties and near-ties resolve the
    same way whatever the batch size.

    Shapes:
        query: ``[B, M, 3]``, ref: ``[B, N, 3]`` -> LongTensor ``[B, M, k]``, nearest first.
    """
    if k > ref.shape[1]:
        raise ValueError(f"knn: k={k} is more than the {ref.shape[1]} reference points")
    dist = torch.cdist(query.float(), ref.float(), compute_mode="donot_use_mm_for_euclid_dist")
    return dist.topk(k, dim=-1, largest=False, sorted=True).indices


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of ``points`` picked per batch element by ``idx``.

    Shapes:
        points: ``[B, N, C]``; idx: ``[B, ...]`` -> ``[B, ..., C]``.
    """
    b = points.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return out.reshape(*idx.shape, points.shape[-1])


def voxel_downsample(points: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Average the points (all channels) that fall in the same cubic voxel.

    Voxels come out in the lexicographic order of their grid coordinates, so the result is
    a deterministic function of the input. Callers renormalise averaged normals.

    Shapes:
        points: ``[N, C]`` (coordinates first) -> ``[M, C]``, ``M <= N``.
    """
    xyz = points[:, :3]
    grid = torch.floor((xyz - xyz.min(0).values) / voxel_size).long()
    # one int64 key per voxel, in lexicographic order of (i, j, k): a 1-D unique is far
    # faster than torch.unique(dim=0) on rows
    size = grid.max(0).values + 1
    key = (grid[:, 0] * size[1] + grid[:, 1]) * size[2] + grid[:, 2]
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.shape[0], points.shape[1], dtype=points.dtype, device=points.device)
    sums.index_add_(0, inverse, points)
    return sums / counts.unsqueeze(1).to(points.dtype)


def voxel_downsample_to(points: torch.Tensor, num_points: int, steps: int = 12) -> torch.Tensor:
    """Voxel-downsample with the largest voxel size that keeps at least ``num_points`` voxels.

    The size is found by bisection (the voxel count falls as the size grows); the result
    may have more than ``num_points`` rows, which the caller thins to exactly that many.

    Shapes:
        points: ``[N, C]`` with ``N >= num_points`` -> ``[M, C]``, ``num_points <= M <= N``.
    """
    xyz = points[:, :3]
    extent = float((xyz.max(0).values - xyz.min(0).values).max())
    if extent == 0.0:
        return points
    lo, hi = 0.0, extent  # size `lo` always keeps enough voxels (0 means no merging)
    best = points
    for _ in range(steps):
        mid = (lo + hi) / 2
        down = voxel_downsample(points, mid)
        if down.shape[0] >= num_points:
            lo, best = mid, down
        else:
            hi = mid
    return best
