"""Bad point-cloud files are DataErrors naming the file (issue 14's bad-row corpus)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import anymodal
from anymodal_pointcloud.config import PointCloudConfig
from anymodal_pointcloud.io import load_pointcloud


def test_an_object_array_npz_is_a_data_error(tmp_path: Path) -> None:
    # issue 14: an object-array .npz killed a run under on_error: skip (a raw ValueError).
    path = tmp_path / "cloud.npz"
    points = np.empty(2, dtype=object)
    points[0], points[1] = [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]
    np.savez(path, points=points)
    with pytest.raises(anymodal.DataError, match=r"cloud\.npz.*numeric arrays"):
        load_pointcloud(str(path), PointCloudConfig())
