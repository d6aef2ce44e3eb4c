"""Point-cloud encoders: ``pointcloud_pointnet`` and ``pointcloud_pointbert_tiny``."""

from __future__ import annotations

from anymodal_pointcloud.encoders.pointbert import PointBertEncoder
from anymodal_pointcloud.encoders.pointnet import PointNetEncoder

__all__ = ["PointBertEncoder", "PointNetEncoder"]
