"""Labelled synthetic clouds: points on the surface of five primitives, with noise.

Class ``k`` is ``PRIMITIVES[k]`` (sphere, cube, cylinder, cone, torus). Each item is the
shape at a random rotation about the up axis with a random aspect, surface noise, a
class colour and analytic normals; it goes through the modality's eval transform, so it
looks like a loaded file.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from anymodal.authoring import synthetic_labels
from anymodal_pointcloud.config import PointCloudConfig
from anymodal_pointcloud.io import RawPointCloud
from anymodal_pointcloud.transforms import rotation_about, transform_pointcloud

__all__ = ["PRIMITIVES", "sample_primitive", "synthesize_pointclouds"]

PRIMITIVES = ("sphere", "cube", "cylinder", "cone", "torus")
_COLORS = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.7, 0.3], [0.2, 0.3, 0.9],
                        [0.9, 0.8, 0.2], [0.6, 0.3, 0.8]])

Sampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _uniform(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g)


def _sphere(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.randn(n, 3, generator=g)
    p = p / p.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return p, p.clone()


def _cube(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    face = torch.randint(0, 6, (n,), generator=g)
    axis, sign = face % 3, (face // 3).float() * 2 - 1
    p = _uniform((n, 3), g) * 2 - 1
    rows = torch.arange(n)
    p[rows, axis] = sign
    normals = torch.zeros(n, 3)
    normals[rows, axis] = sign
    return p, normals


def _cylinder(n: int, g: torch.Generator, radius: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    # y is the axis; side and caps picked in proportion to their areas
    side_area, cap_area = 2 * math.pi * radius * 2, math.pi * radius**2
    on_side = _uniform((n,), g) < side_area / (side_area + 2 * cap_area)
    theta = _uniform((n,), g) * 2 * math.pi
    r = torch.where(on_side, torch.full((n,), radius), radius * _uniform((n,), g).sqrt())
    cap_y = torch.where(_uniform((n,), g) < 0.5, -1.0, 1.0)
    y = torch.where(on_side, _uniform((n,), g) * 2 - 1, cap_y)
    p = torch.stack([r * theta.cos(), y, r * theta.sin()], dim=1)
    side_n = torch.stack([theta.cos(), torch.zeros(n), theta.sin()], dim=1)
    cap_n = torch.stack([torch.zeros(n), cap_y, torch.zeros(n)], dim=1)
    return p, torch.where(on_side.unsqueeze(1), side_n, cap_n)


def _cone(n: int, g: torch.Generator, radius: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    # apex at y = 1, base disc at y = -1
    slant = math.hypot(radius, 2.0)
    side_area, base_area = math.pi * radius * slant, math.pi * radius**2
    on_side = _uniform((n,), g) < side_area / (side_area + base_area)
    theta = _uniform((n,), g) * 2 * math.pi
    t = _uniform((n,), g).sqrt()  # area-uniform: density grows towards the base
    r = radius * t
    y = torch.where(on_side, 1 - 2 * t, torch.full((n,), -1.0))
    p = torch.stack([r * theta.cos(), y, r * theta.sin()], dim=1)
    side_n = torch.stack([2 * theta.cos(), torch.full((n,), radius), 2 * theta.sin()], dim=1)
    side_n = side_n / side_n.norm(dim=1, keepdim=True)
    base_n = torch.tensor([0.0, -1.0, 0.0]).expand(n, 3)
    return p, torch.where(on_side.unsqueeze(1), side_n, base_n)


def _torus(n: int, g: torch.Generator, big: float = 0.7, small: float = 0.3
           ) -> tuple[torch.Tensor, torch.Tensor]:
    u = _uniform((n,), g) * 2 * math.pi
    # roughly area-weighted: the outer side (cos v > 0) holds more area, so more points
    v = _uniform((n,), g) * 2 * math.pi
    keep = _uniform((n,), g) < (big + small * v.cos()) / (big + small)
    v = torch.where(keep, v, math.pi - v)
    ring = big + small * v.cos()
    p = torch.stack([ring * u.cos(), small * v.sin(), ring * u.sin()], dim=1)
    normals = torch.stack([v.cos() * u.cos(), v.sin(), v.cos() * u.sin()], dim=1)
    return p, normals


_SAMPLERS: tuple[Sampler, ...] = (_sphere, _cube, _cylinder, _cone, _torus)


def sample_primitive(label: int, n: int, g: torch.Generator, noise: float = 0.0,
                     up_axis: str = "y") -> RawPointCloud:
    """``n`` points on primitive ``label % 5``, randomly turned about ``up_axis``, with noise.

    Shapes:
        points, colors, normals: ``[n, 3]``.
    """
    label = int(label) % len(PRIMITIVES)
    points, normals = _SAMPLERS[label](n, g)
    # a random aspect (y stretch) keeps the class but varies the instance
    stretch = torch.tensor([1.0, 0.8 + 0.4 * float(_uniform((), g)), 1.0])
    points = points * stretch
    normals = normals / stretch
    normals = normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-8)
    # the primitives are built with y up; map y to the requested up axis
    if up_axis != "y":
        order = {"x": [1, 0, 2], "z": [0, 2, 1]}[up_axis]
        points, normals = points[:, order], normals[:, order]
    rot = rotation_about(up_axis, float(_uniform((), g)) * 2 * math.pi)
    points, normals = points @ rot.T, normals @ rot.T
    points = points + noise * torch.randn(points.shape, generator=g)
    colors = (_COLORS[label] + 0.05 * torch.randn(n, 3, generator=g)).clamp(0, 1)
    return RawPointCloud(points, colors, normals, f"<synthetic {PRIMITIVES[label]}>")


def synthesize_pointclouds(n: int, generator: torch.Generator,
                           labels: torch.Tensor | None = None,
                           config: PointCloudConfig | None = None) -> list[torch.Tensor]:
    """``n`` eval-transformed items; item ``i`` is primitive ``labels[i] % 5``.

    Each primitive is sampled at exactly ``num_points`` points, so no sampling step runs.

    Shapes:
        each item: ``[config.num_points, config.channels]``.
    """
    config = config or PointCloudConfig()
    items = []
    for label in synthetic_labels(n, generator, labels, len(PRIMITIVES)):
        raw = sample_primitive(label, config.num_points, generator, config.synth_noise,
                               config.up_axis)
        items.append(transform_pointcloud(raw, train=False, config=config))
    return items
