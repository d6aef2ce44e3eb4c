"""The ``pointcloud`` :class:`anymodal.ModalitySpec`, built from its options."""

from __future__ import annotations

import torch

from anymodal import ModalitySpec
from anymodal_pointcloud.config import PointCloudConfig, validate_pointcloud_config
from anymodal_pointcloud.io import load_pointcloud
from anymodal_pointcloud.synthetic import PRIMITIVES, synthesize_pointclouds
from anymodal_pointcloud.transforms import transform_pointcloud

__all__ = ["collate_pointclouds", "make_pointcloud_modality"]


def collate_pointclouds(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack items of the same ``[P, C]`` into ``[B, P, C]``.

    Raises:
        ValueError: items of different shapes (built with different options).
    """
    shapes = {tuple(item.shape) for item in items}
    if len(shapes) > 1:
        raise ValueError(f"pointcloud items must share one shape [P, C], got {sorted(shapes)}")
    return torch.stack(items)


def make_pointcloud_modality(config: PointCloudConfig) -> ModalitySpec:
    """The modality with ``config``'s options bound (``configure`` of the spec)."""
    validate_pointcloud_config(config)
    return ModalitySpec(
        name="pointcloud",
        load=lambda source: load_pointcloud(source, config),
        transform=lambda raw, train: transform_pointcloud(raw, train, config),
        collate=collate_pointclouds,
        synthesize=lambda n, generator, labels=None: synthesize_pointclouds(
            n, generator, labels, config
        ),
        default_encoder="pointcloud_pointnet",
        num_classes=len(PRIMITIVES),
        config_cls=PointCloudConfig,
        configure=make_pointcloud_modality,
        description="3D point clouds and meshes (.ply .pcd .xyz .pts .obj .off .stl .glb .npy)",
    )
