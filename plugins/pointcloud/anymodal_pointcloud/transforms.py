"""From a :class:`RawPointCloud` to a model-ready item ``[num_points, C]``.

The steps, in order: assemble the channels (xyz, rgb, normals), centre the cloud and scale
it into the unit sphere, bring it to exactly ``num_points`` points (farthest-point, voxel or
random sampling; repeating points of a smaller cloud), and, in training only, augment it
(rotation about the up axis, isotropic scale, clipped jitter, point dropout).

Evaluation is deterministic: farthest-point sampling starts at point 0, random sampling
uses a fixed seed, padding repeats points in order. Training draws from torch's global
generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

import math

import torch

from anymodal import DataError
from anymodal_pointcloud.config import PointCloudConfig
from anymodal_pointcloud.io import RawPointCloud
from anymodal_pointcloud.sampling import farthest_point_sample_numpy, voxel_downsample_to

__all__ = [
    "assemble_channels",
    "augment",
    "normalize_unit_sphere",
    "resample",
    "rotation_about",
    "transform_pointcloud",
]

_EVAL_SEED = 0
_GREY = 0.5  # colour given to clouds without colours when colours are asked for


def transform_pointcloud(raw: RawPointCloud, train: bool, config: PointCloudConfig) -> torch.Tensor:
    """The item of ``raw``: ``[num_points, C]`` float32.

    Args:
        raw: a loaded cloud.
        train: turn augmentation (and random sampling starts) on.
        config: the modality's options.

    Shapes:
        output: ``[config.num_points, config.channels]``.
    """
    features = assemble_channels(raw, config)
    features[:, :3] = normalize_unit_sphere(features[:, :3], raw.source)
    features = resample(features, config, train)
    if train:
        features = augment(features, config)
    return features.contiguous()


def assemble_channels(raw: RawPointCloud, config: PointCloudConfig) -> torch.Tensor:
    """Concatenate xyz, rgb (grey when absent) and normals as the options ask.

    Shapes:
        output: ``[N, config.channels]``.
    """
    parts = [raw.points.float()]
    if config.use_colors:
        colors = raw.colors if raw.colors is not None else torch.full_like(raw.points, _GREY)
        parts.append(colors.float())
    if config.use_normals:
        if raw.normals is None:
            raise DataError(raw.source, "has no normals (load it with use_normals=True)")
        parts.append(raw.normals.float())
    return torch.cat(parts, dim=1)


def normalize_unit_sphere(xyz: torch.Tensor, source: str = "point cloud") -> torch.Tensor:
    """Centre on the centroid and scale so that the farthest point is at distance 1.

    Raises:
        DataError: every point is at the same place (no extent to scale).

    Shapes:
        xyz: ``[N, 3]`` -> ``[N, 3]``.
    """
    centred = xyz - xyz.mean(0, keepdim=True)
    radius = centred.norm(dim=1).max()
    if not radius > 0:
        raise DataError(source, f"all {xyz.shape[0]} points coincide: the cloud has no extent")
    return centred / radius


def resample(features: torch.Tensor, config: PointCloudConfig, train: bool) -> torch.Tensor:
    """Exactly ``num_points`` rows: sample a larger cloud down, repeat points of a smaller one.

    Shapes:
        features: ``[N, C]`` -> ``[num_points, C]``.
    """
    n, target = features.shape[0], config.num_points
    if n == target:
        return features
    if n < target:
        extra = (torch.randint(0, n, (target - n,)) if train
                 else torch.arange(target - n) % n)
        return torch.cat([features, features[extra]])
    if config.sampling == "fps":
        start = int(torch.randint(0, n, ())) if train else 0
        idx = farthest_point_sample_numpy(features[:, :3].numpy(), target, start)
        return features[torch.from_numpy(idx)]
    if config.sampling == "random":
        return features[_permutation(n, train)[:target]]
    down = voxel_downsample_to(features, target)
    if config.use_normals:  # averaged normals are shorter than 1
        normals = down[:, -3:]
        down[:, -3:] = normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-8)
    if down.shape[0] > target:
        # voxels come in grid order: evenly spaced picks spread over the whole grid
        idx = (_permutation(down.shape[0], True)[:target] if train
               else torch.linspace(0, down.shape[0] - 1, target).round().long())
        down = down[idx]
    return down


def _permutation(n: int, train: bool) -> torch.Tensor:
    generator = None if train else torch.Generator().manual_seed(_EVAL_SEED)
    return torch.randperm(n, generator=generator)


def rotation_about(axis: str, angle: float) -> torch.Tensor:
    """The 3x3 rotation by ``angle`` radians about ``axis`` (``"x"``, ``"y"`` or ``"z"``)."""
    u = "xyz".index(axis)
    a, b = [i for i in range(3) if i != u]
    if u == 1:  # keep the right-handed orientation for y (z -> x)
        a, b = b, a
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.eye(3)
    rot[a, a], rot[a, b], rot[b, a], rot[b, b] = c, -s, s, c
    return rot


def augment(features: torch.Tensor, config: PointCloudConfig) -> torch.Tensor:
    """Training augmentation, drawn from torch's global generator.

    Shapes:
        features: ``[P, C]`` -> ``[P, C]``.
    """
    out = features.clone()
    xyz = out[:, :3]
    if config.rotate:
        rot = rotation_about(config.up_axis, float(torch.rand(()) * 2 * math.pi))
        xyz = xyz @ rot.T
        if config.use_normals:
            out[:, -3:] = out[:, -3:] @ rot.T
    if config.scale_max > config.scale_min or config.scale_min != 1.0:
        scale = config.scale_min + float(torch.rand(())) * (config.scale_max - config.scale_min)
        xyz = xyz * scale
    if config.jitter_sigma > 0:
        noise = (config.jitter_sigma * torch.randn_like(xyz)).clamp(
            -config.jitter_clip, config.jitter_clip)
        xyz = xyz + noise
    out[:, :3] = xyz
    if config.dropout_ratio > 0:
        ratio = float(torch.rand(())) * config.dropout_ratio
        dropped = torch.rand(out.shape[0]) < ratio
        out[dropped] = out[0].clone()
    return out
