"""Loading real files: every format, colours and normals, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch

import anymodal
from anymodal_pointcloud.config import PointCloudConfig
from anymodal_pointcloud.io import RawPointCloud, load_pointcloud

FULL = PointCloudConfig(num_points=128, use_colors=True, use_normals=True)


@pytest.mark.parametrize("name", ["cloud.ply", "cloud.pcd", "cloud.npy"])
def test_cloud_formats_keep_points_colours_and_normals(files, cloud, name):
    raw = load_pointcloud(files[name], FULL)
    assert raw.points.shape == (300, 3) and raw.points.dtype == torch.float32
    np.testing.assert_allclose(raw.points.numpy(), np.asarray(cloud.points), atol=1e-5)
    np.testing.assert_allclose(raw.colors.numpy(), np.asarray(cloud.colors), atol=1 / 255)
    np.testing.assert_allclose(raw.normals.numpy(), np.asarray(cloud.normals), atol=1e-5)
    assert str(files[name]) == raw.source


@pytest.mark.parametrize("name", ["cloud.xyz", "cloud.xyzn", "cloud.xyzrgb", "cloud.pts"])
def test_text_cloud_formats(files, cloud, name):
    raw = load_pointcloud(files[name], PointCloudConfig(num_points=128))
    np.testing.assert_allclose(raw.points.numpy(), np.asarray(cloud.points), atol=1e-5)
    assert raw.colors is None and raw.normals is None  # not asked for


def test_missing_normals_are_estimated_and_point_outwards(files):
    raw = load_pointcloud(files["cloud.xyz"], FULL)  # .xyz stores coordinates only
    assert raw.normals is not None
    torch.testing.assert_close(raw.normals.norm(dim=1), torch.ones(300), atol=1e-4, rtol=0)
    # on a sphere the outward normal is the position itself
    cosine = (raw.normals * raw.points).sum(1)
    assert cosine.min() > 0.9


def test_missing_colours_become_grey(files):
    spec = anymodal.get_modality("pointcloud", num_points=64, use_colors=True)
    item = spec.transform(spec.load(files["cloud.xyz"]), False)
    assert item.shape == (64, 6)
    assert torch.all(item[:, 3:] == 0.5)


def test_npz_with_named_arrays(files, cloud):
    raw = load_pointcloud(files["cloud.npz"], FULL)
    np.testing.assert_allclose(raw.colors.numpy(), np.asarray(cloud.colors), atol=1e-6)
    assert raw.normals.shape == (300, 3)  # estimated: the archive has none


@pytest.mark.parametrize("name", ["mesh.ply", "mesh.obj", "mesh.off", "mesh.stl", "mesh.glb",
                                  "mesh.gltf"])
def test_meshes_are_sampled_on_their_surface(files, name):
    config = PointCloudConfig(num_points=200, use_normals=True)
    raw = load_pointcloud(files[name], config)
    assert raw.points.shape == (400, 3)  # mesh_oversample = 2
    lo, hi = raw.points.min(0).values, raw.points.max(0).values
    torch.testing.assert_close(lo, torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(hi, torch.tensor([2.0, 1.0, 0.5]), atol=1e-4, rtol=0)
    # every point lies on a face of the box: one coordinate at 0 or at its maximum
    on_face = ((raw.points < 1e-4) | (raw.points > torch.tensor([2.0, 1.0, 0.5]) - 1e-4)).any(1)
    assert on_face.all()
    # and normals are axis-aligned unit vectors
    assert torch.allclose(raw.normals.abs().max(1).values, torch.ones(400), atol=1e-3)


def test_interpolated_vertex_normals_are_unit_and_outward(tmp_path):
    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=10)
    sphere.compute_vertex_normals()
    path = tmp_path / "sphere.ply"
    assert o3d.io.write_triangle_mesh(str(path), sphere)
    raw = load_pointcloud(path, PointCloudConfig(num_points=100, use_normals=True))
    torch.testing.assert_close(raw.normals.norm(dim=1), torch.ones(200), atol=1e-5, rtol=0)
    position = raw.points / raw.points.norm(dim=1, keepdim=True)
    assert (raw.normals * position).sum(1).min() > 0.95


def test_mesh_loading_is_deterministic_and_poisson_works(files):
    uniform = PointCloudConfig(num_points=100)
    a = load_pointcloud(files["mesh.obj"], uniform)
    b = load_pointcloud(files["mesh.obj"], uniform)
    assert torch.equal(a.points, b.points)
    poisson = load_pointcloud(files["mesh.obj"], PointCloudConfig(num_points=100,
                                                                  mesh_sampling="poisson"))
    assert poisson.points.shape == (200, 3)
    assert not torch.equal(poisson.points, a.points)


def test_arrays_and_tensors_in_memory():
    array = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    array[:, 3:] = np.random.default_rng(2).integers(0, 256, size=(50, 3))  # 8-bit colours
    raw = load_pointcloud(torch.from_numpy(array), FULL)
    assert raw.points.shape == (50, 3)
    torch.testing.assert_close(raw.colors, torch.from_numpy(array[:, 3:]) / 255)
    assert isinstance(load_pointcloud(raw, FULL), RawPointCloud)


# -- bad input ------------------------------------------------------------------------------


def _raises(source, match: str, config: PointCloudConfig = FULL) -> anymodal.DataError:
    with pytest.raises(anymodal.DataError, match=match) as info:
        load_pointcloud(source, config)
    if isinstance(source, (str, Path)):
        assert str(source) in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    _raises(tmp_path / "absent.ply", "file not found")
    _raises(tmp_path / "absent.obj", "file not found")


def test_unknown_extension(tmp_path):
    path = tmp_path / "cloud.las"
    path.write_bytes(b"LASF")
    _raises(path, "unknown point-cloud extension '.las'")


def test_corrupt_files(tmp_path):
    for name in ("bad.ply", "bad.pcd", "bad.xyz", "bad.stl", "bad.npy"):
        path = tmp_path / name
        path.write_bytes(b"\x00\x13garbage that is no geometry\n")
        _raises(path, "corrupt|not a PLY|no faces|not a readable|no points")


def test_truncated_binary_ply_is_not_read_as_garbage(files, tmp_path):
    data = files["cloud.ply"].read_bytes()
    path = tmp_path / "truncated.ply"
    path.write_bytes(data[: len(data) // 2])
    _raises(path, "truncated PLY file")
    mesh = files["mesh.ply"].read_bytes()
    path = tmp_path / "truncated_mesh.ply"
    path.write_bytes(mesh[: len(mesh) - 40])
    _raises(path, "truncated")


def test_empty_clouds(tmp_path):
    npy = tmp_path / "empty.npy"
    np.save(npy, np.zeros((0, 3), dtype=np.float32))
    _raises(npy, "empty point cloud")
    xyz = tmp_path / "empty.xyz"
    xyz.write_text("")
    _raises(xyz, "empty point cloud")
    ply = tmp_path / "empty.ply"
    ply.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\n"
                   "property float y\nproperty float z\nend_header\n")
    _raises(ply, "empty point cloud")
    _raises(np.zeros((0, 3)), "empty point cloud")


def test_mesh_with_no_faces(tmp_path):
    mesh = o3d.geometry.TriangleMesh()
    mesh.vertices = o3d.utility.Vector3dVector(np.random.default_rng(0).normal(size=(10, 3)))
    path = tmp_path / "vertices_only.obj"
    assert o3d.io.write_triangle_mesh(str(path), mesh)
    _raises(path, "mesh with no faces")


def test_nan_coordinates(tmp_path):
    points = np.random.default_rng(0).normal(size=(20, 3))
    points[3, 1] = np.nan
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    for ext in ("ply", "pcd"):
        path = tmp_path / f"nan.{ext}"
        assert o3d.io.write_point_cloud(str(path), pcd)
        _raises(path, "coordinates contain NaN")
    npy = tmp_path / "nan.npy"
    np.save(npy, points)
    _raises(npy, "coordinates contain NaN")


def test_bad_array_shapes_and_types(tmp_path):
    _raises(np.zeros((10, 4)), r"expected an array \[N, 3\|6\|9\]")
    _raises(b"ply\n", "pass a file path")
    npz = tmp_path / "nameless.npz"
    np.savez(npz, xyz=np.zeros((4, 3)))
    _raises(npz, "no 'points' array")
