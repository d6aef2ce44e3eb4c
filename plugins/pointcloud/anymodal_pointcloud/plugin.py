"""The hook implementations of anymodal-pointcloud (entry point ``pointcloud``).

Importing this module stays cheap: open3d is imported only when a file is read.
"""

from __future__ import annotations

from typing import Any

from anymodal import EncoderSpec, hookimpl
from anymodal_pointcloud.config import PointBertConfig, PointCloudConfig, PointNetConfig
from anymodal_pointcloud.encoders import PointBertEncoder, PointNetEncoder
from anymodal_pointcloud.modality import make_pointcloud_modality
from anymodal_pointcloud.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)


@hookimpl
def anymodal_register_modalities(register: Any) -> None:
    register(make_pointcloud_modality(PointCloudConfig()))


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("pointcloud_pointnet", "pointcloud", PointNetEncoder, PointNetConfig,
                         "PointNet: shared per-point MLP + max-pool"))
    register(EncoderSpec("pointcloud_pointbert_tiny", "pointcloud", PointBertEncoder,
                         PointBertConfig,
                         "Point-BERT/ULIP: FPS + kNN patches, mini-PointNet tokens, transformer"))
