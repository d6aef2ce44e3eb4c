"""Fixtures: real files written with open3d's and numpy's own writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest


@pytest.fixture(scope="session")
def cloud() -> o3d.geometry.PointCloud:
    """300 points on a unit sphere with colours and normals."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd.colors = o3d.utility.Vector3dVector(rng.uniform(size=(300, 3)))
    pcd.normals = o3d.utility.Vector3dVector(points)
    return pcd


@pytest.fixture(scope="session")
def box() -> o3d.geometry.TriangleMesh:
    """A box 2 x 1 x 0.5 with face normals only (the STL writer needs them)."""
    mesh = o3d.geometry.TriangleMesh.create_box(2.0, 1.0, 0.5)
    mesh.compute_triangle_normals()
    return mesh


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, cloud: o3d.geometry.PointCloud,
          box: o3d.geometry.TriangleMesh) -> dict[str, Path]:
    """One file per supported format, each written by its library's writer."""
    root = tmp_path_factory.mktemp("pointcloud")
    out: dict[str, Path] = {}
    for ext in ("ply", "pcd", "xyz", "xyzn", "xyzrgb", "pts"):
        path = root / f"cloud.{ext}"
        assert o3d.io.write_point_cloud(str(path), cloud)
        out[f"cloud.{ext}"] = path
    for ext in ("ply", "obj", "off", "stl", "gltf"):
        path = root / f"mesh.{ext}"
        assert o3d.io.write_triangle_mesh(str(path), box)
        out[f"mesh.{ext}"] = path
    # open3d's legacy GLB writer puts the buffer in a data URI that its own reader rejects
    # (isl-org/Open3D#4376); the tensor API writes a standard binary chunk.
    glb = root / "mesh.glb"
    assert o3d.t.io.write_triangle_mesh(str(glb), o3d.t.geometry.TriangleMesh.from_legacy(box))
    out["mesh.glb"] = glb
    points = np.asarray(cloud.points, dtype=np.float32)
    full = np.concatenate([points, np.asarray(cloud.colors), np.asarray(cloud.normals)], 1)
    np.save(root / "cloud.npy", full.astype(np.float32))
    out["cloud.npy"] = root / "cloud.npy"
    np.savez(root / "cloud.npz", points=points, colors=np.asarray(cloud.colors))
    out["cloud.npz"] = root / "cloud.npz"
    return out
