"""Doctor check for the point-cloud plugin: open3d (which links the system's libusb)."""

from __future__ import annotations

from typing import Any

from anymodal import DoctorCheck, hookimpl


def _open3d() -> str:
    import numpy as np
    import open3d

    cloud = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(np.random.rand(64, 3)))
    reduced = cloud.voxel_down_sample(0.5)
    if not 0 < len(reduced.points) <= 64:
        raise RuntimeError(f"voxel down-sampling 64 points gave {len(reduced.points)}")
    return f"{open3d.__version__} (voxel down-sampling ran)"


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register this plugin's ``anymodal doctor`` checks."""
    register(DoctorCheck("pointcloud: open3d", _open3d,
                         "apt-get install -y libusb-1.0-0 && make install", ("open3d",)))
