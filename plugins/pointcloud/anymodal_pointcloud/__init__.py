"""anymodal-pointcloud: 3D point clouds and meshes as an anymodal modality.

Registers the modality ``pointcloud`` (open3d loading of clouds and meshes, unit-sphere
normalisation, farthest-point/voxel/random sampling to a fixed count, training
augmentation) and the encoders ``pointcloud_pointnet`` and ``pointcloud_pointbert_tiny``.
"""

from __future__ import annotations

__version__ = "0.1.0"
