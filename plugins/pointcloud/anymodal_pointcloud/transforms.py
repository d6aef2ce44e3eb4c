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
from dataclasses import dataclass
from typing import Any

import torch

from anymodal import DataError
from anymodal_pointcloud.config import PointCloudConfig
from anymodal_pointcloud.io import RawPointCloud
from anymodal_pointcloud.sampling import farthest_point_sample_numpy, voxel_downsample_to

__all__ = [
    "PreparedCloud",
    "assemble_channels",
    "augment",
    "normalize_unit_sphere",
    "prepare_pointcloud",
    "resample",
    "rotation_about",
    "transform_pointcloud",
]

_EVAL_SEED = 0
_GREY = 0.5  # colour given to clouds without colours when colours are asked for


@dataclass
class PreparedCloud:
    """The prepared form of a cloud (:func:`prepare_pointcloud`; the sample cache stores it).

    Args:
        features: the assembled channels, centred and scaled into the unit sphere, and,
            when ``sampled``, brought down by the deterministic part of the sampling.
        sampled: ``features`` went through the sampling already (voxel grid, or
            farthest-point sampling from point 0 with ``fps_start="first"``).
        source: the file or description it came from, for error messages.

    Shapes:
        features: ``[M, C]``.
    """

    features: torch.Tensor
    sampled: bool
    source: str


def prepare_pointcloud(raw: Any, config: PointCloudConfig) -> Any:
    """The deterministic prefix of :func:`transform_pointcloud`.

    Channels assembled and normalised; then the sampling when it draws nothing in
    training: the voxel grid (whose final pick of ``num_points`` voxels stays random),
    farthest-point sampling with ``fps_start="first"``. Random sampling and farthest-point
    sampling from a random start stay in the transform, every epoch.
    """
    if not isinstance(raw, RawPointCloud):
        return raw
    features = assemble_channels(raw, config)
    features[:, :3] = normalize_unit_sphere(features[:, :3], raw.source)
    deterministic = config.sampling == "voxel" or (
        config.sampling == "fps" and config.fps_start == "first")
    if not deterministic or features.shape[0] <= config.num_points:
        return PreparedCloud(features, False, raw.source)
    return PreparedCloud(_sample_down(features, config, False), True, raw.source)


def transform_pointcloud(raw: Any, train: bool, config: PointCloudConfig) -> torch.Tensor:
    """The item of ``raw``: ``[num_points, C]`` float32.

    Args:
        raw: a loaded cloud, or its :class:`PreparedCloud` (the same item from the same
            random draws).
        train: turn augmentation (and random sampling starts) on.
        config: the modality's options.

    Shapes:
        output: ``[config.num_points, config.channels]``.
    """
    if isinstance(raw, PreparedCloud):
        features = resample(raw.features, config, train, sampled=raw.sampled)
    else:
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


def resample(features: torch.Tensor, config: PointCloudConfig, train: bool,
             sampled: bool = False) -> torch.Tensor:
    """Exactly ``num_points`` rows: sample a larger cloud down, repeat points of a smaller one.

    Args:
        features: the normalised cloud.
        config: the modality's options.
        train: random starts, picks and repeats.
        sampled: ``features`` already went through the deterministic sampling
            (:class:`PreparedCloud`): only the voxel grid's final pick is left.

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
    if config.sampling == "random":
        return features[_permutation(n, train)[:target]]
    down = features if sampled else _sample_down(features, config, train)
    if down.shape[0] > target:
        # voxels come in grid order: evenly spaced picks spread over the whole grid
        idx = (_permutation(down.shape[0], True)[:target] if train
               else torch.linspace(0, down.shape[0] - 1, target).round().long())
        down = down[idx]
    return down


def _sample_down(features: torch.Tensor, config: PointCloudConfig, train: bool
                 ) -> torch.Tensor:
    """Farthest points (exactly ``num_points``) or voxels (at least that many).

    Shapes:
        features: ``[N, C]``, ``N > num_points`` -> ``[M, C]``, ``M >= num_points``.
    """
    target = config.num_points
    if config.sampling == "fps":
        random_start = train and config.fps_start == "random"
        start = int(torch.randint(0, features.shape[0], ())) if random_start else 0
        idx = farthest_point_sample_numpy(features[:, :3].numpy(), target, start)
        return features[torch.from_numpy(idx)]
    down = voxel_downsample_to(features, target)
    if config.use_normals:  # averaged normals are shorter than 1
        normals = down[:, -3:]
        down[:, -3:] = normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-8)
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
