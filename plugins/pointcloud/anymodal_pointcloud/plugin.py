"""The ``pointcloud`` modality and its encoders (entry point ``pointcloud``).

Importing this module stays cheap: open3d is imported only when a file is read.
"""

from __future__ import annotations

import torch

from anymodal import define_modality, plugin_hooks
from anymodal_pointcloud.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)
from anymodal_pointcloud.config import PointCloudConfig, validate_pointcloud_config
from anymodal_pointcloud.encoders import PointBertEncoder, PointNetEncoder
from anymodal_pointcloud.io import load_pointcloud
from anymodal_pointcloud.synthetic import PRIMITIVES, synthesize_pointclouds
from anymodal_pointcloud.transforms import prepare_pointcloud, transform_pointcloud

__all__ = ["POINTCLOUD", "anymodal_register_encoders", "anymodal_register_modalities",
           "collate_pointclouds"]


def collate_pointclouds(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack items of the same ``[P, C]`` into ``[B, P, C]``.

    Raises:
        ValueError: items of different shapes (built with different options).
    """
    shapes = {tuple(item.shape) for item in items}
    if len(shapes) > 1:
        raise ValueError(f"pointcloud items must share one shape [P, C], got {sorted(shapes)}")
    return torch.stack(items)


POINTCLOUD = define_modality(
    "pointcloud", PointCloudConfig, load=load_pointcloud, transform=transform_pointcloud,
    collate=collate_pointclouds, synthesize=synthesize_pointclouds,
    validate=validate_pointcloud_config, num_classes=len(PRIMITIVES),
    default_encoder="pointcloud_pointnet", prepare=prepare_pointcloud,
    description="3D point clouds and meshes (.ply .pcd .xyz .pts .obj .off .stl .glb .npy)",
)

anymodal_register_modalities, anymodal_register_encoders = plugin_hooks(
    modalities=[POINTCLOUD], encoders=[PointNetEncoder, PointBertEncoder])
