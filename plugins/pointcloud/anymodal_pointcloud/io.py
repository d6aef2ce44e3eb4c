"""Reading point clouds and meshes into a :class:`RawPointCloud`.

open3d reads the files: point clouds (``.ply .pcd .xyz .xyzn .xyzrgb .pts``) and meshes
(``.ply .obj .off .stl .glb .gltf``; a ``.ply`` is a mesh when its header declares faces).
Meshes are sampled to points on their surface. numpy reads ``.npy`` (``[N, 3|6|9]``:
xyz, then rgb, then normals; the same layout as an item) and ``.npz`` (arrays named
``points``, ``colors``, ``normals``); arrays and tensors in memory are accepted too.

open3d reports a bad file by printing a warning and returning an empty geometry, so every
result is checked here: a missing file, a corrupt or truncated file, an empty cloud, a
mesh without faces, NaN coordinates and an unknown extension each raise
:class:`anymodal.DataError` naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymodal import DataError
from anymodal_pointcloud.config import PointCloudConfig
from anymodal_pointcloud.ply import check_ply_body, read_ply_header

__all__ = [
    "CLOUD_SUFFIXES",
    "MESH_SUFFIXES",
    "RawPointCloud",
    "estimate_normals",
    "load_pointcloud",
]

CLOUD_SUFFIXES = (".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
MESH_SUFFIXES = (".obj", ".off", ".stl", ".glb", ".gltf")
ARRAY_SUFFIXES = (".npy", ".npz")
_ALL = (".ply", *CLOUD_SUFFIXES, *MESH_SUFFIXES, *ARRAY_SUFFIXES)
_SAMPLING_SEED = 0  # open3d's sampler is seeded so that loading a mesh is deterministic


@dataclass
class RawPointCloud:
    """A loaded cloud, before normalisation and sampling.

    Args:
        points: coordinates ``[N, 3]`` float32.
        colors: ``[N, 3]`` in ``[0, 1]``, or ``None`` (absent or not asked for).
        normals: ``[N, 3]`` unit vectors, or ``None``.
        source: the file or description it came from, for error messages.
    """

    points: torch.Tensor
    colors: torch.Tensor | None
    normals: torch.Tensor | None
    source: str


def load_pointcloud(source: Any, config: PointCloudConfig) -> RawPointCloud:
    """Read ``source``: a path (str/Path), a numpy array or tensor, or a RawPointCloud.

    Raises:
        DataError: the source cannot be read or holds no valid points.
    """
    if isinstance(source, RawPointCloud):
        return _finish(source.points, source.colors, source.normals, source.source, config)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        array = source.detach().cpu().numpy() if torch.is_tensor(source) else source
        name = f"<{type(source).__name__} {tuple(array.shape)}>"
        return _from_columns(array, name, config)
    if not isinstance(source, (str, Path)):
        raise DataError(
            f"<{type(source).__name__}>",
            "cannot be read as a point cloud: pass a file path, a numpy array or a tensor",
        )
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in _ALL:
        raise DataError(path, f"unknown point-cloud extension {suffix!r}; supported: "
                              + " ".join(_ALL))
    if not path.is_file():
        raise DataError(path, "file not found")
    if suffix == ".npy":
        return _from_columns(_np_load(path), str(path), config)
    if suffix == ".npz":
        return _from_npz(path, config)
    if suffix == ".ply":
        header = read_ply_header(path)
        check_ply_body(path, header)
        if header.count("face") > 0:
            return _read_mesh(path, config, expected_faces=header.count("face"))
        if header.count("vertex") == 0:
            raise DataError(path, "empty point cloud (the PLY header declares 0 vertices)")
        return _read_cloud(path, config)
    if suffix in MESH_SUFFIXES:
        return _read_mesh(path, config)
    return _read_cloud(path, config)


def _o3d() -> Any:
    import open3d as o3d  # heavy: imported when a file is read, never at plugin listing

    return o3d


def _read_cloud(path: Path, config: PointCloudConfig) -> RawPointCloud:
    o3d = _o3d()
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        cloud = o3d.io.read_point_cloud(str(path))
    if len(cloud.points) == 0:
        if path.stat().st_size == 0:
            raise DataError(path, "empty point cloud (the file is empty)")
        raise DataError(path, f"open3d read no points: corrupt or empty {path.suffix} file")
    colors = np.asarray(cloud.colors) if cloud.has_colors() else None
    normals = np.asarray(cloud.normals) if cloud.has_normals() else None
    return _finish(np.asarray(cloud.points), colors, normals, str(path), config)


def _read_mesh(path: Path, config: PointCloudConfig, expected_faces: int = 0) -> RawPointCloud:
    o3d = _o3d()
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(str(path))
    n_vertices, n_faces = len(mesh.vertices), len(mesh.triangles)
    if n_faces == 0:
        raise DataError(path, _why_no_faces(path, n_vertices))
    if n_faces < expected_faces:
        raise DataError(path, f"truncated mesh ({n_faces} of {expected_faces} faces read)")
    vertices = np.asarray(mesh.vertices)
    if not np.isfinite(vertices).all():
        raise DataError(path, "mesh has NaN or infinite vertex coordinates")
    if mesh.get_surface_area() <= 0:
        raise DataError(path, "mesh has zero surface area (degenerate faces)")
    count = math.ceil(config.num_points * config.mesh_oversample)
    use_face_normals = config.use_normals and not mesh.has_vertex_normals()
    if use_face_normals:
        mesh.compute_triangle_normals()
    o3d.utility.random.seed(_SAMPLING_SEED)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        if config.mesh_sampling == "poisson":
            cloud = mesh.sample_points_poisson_disk(count, use_triangle_normal=use_face_normals)
        else:
            cloud = mesh.sample_points_uniformly(count, use_triangle_normal=use_face_normals)
    colors = np.asarray(cloud.colors) if cloud.has_colors() else None
    normals = np.asarray(cloud.normals) if cloud.has_normals() else None
    return _finish(np.asarray(cloud.points), colors, normals, str(path), config)


def _why_no_faces(path: Path, n_vertices: int) -> str:
    """Tell a mesh without faces from an unreadable file (open3d returns nothing for both)."""
    if n_vertices > 0:
        return f"mesh with no faces ({n_vertices} vertices, 0 triangles)"
    if path.stat().st_size == 0:
        return "empty mesh (the file is empty)"
    if path.suffix.lower() == ".obj":
        text = path.read_bytes().decode("utf-8", "replace").splitlines()
        vertices = sum(1 for line in text if line.startswith("v "))
        faces = sum(1 for line in text if line.startswith("f "))
        if vertices and not faces:
            return f"mesh with no faces ({vertices} vertices, 0 faces)"
        if not vertices:
            return "empty mesh or not an OBJ file (no vertex lines)"
    return f"open3d read no faces: corrupt or empty {path.suffix} mesh"


def _np_load(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/OSError/EOFError on bad files
        raise DataError(path, f"not a readable numpy file ({exc})") from None


def _from_npz(path: Path, config: PointCloudConfig) -> RawPointCloud:
    archive = _np_load(path)
    if "points" not in archive.files:
        raise DataError(path, f"the .npz has no 'points' array (arrays: {archive.files})")
    try:  # the arrays are read lazily: an object array or a damaged member fails here
        arrays = {name: archive[name] if name in archive.files else None
                  for name in ("points", "colors", "normals")}
    except Exception as exc:  # numpy raises ValueError (pickled objects), zipfile errors...
        raise DataError(path, f"not a readable .npz of numeric arrays ({exc})") from None
    return _finish(arrays["points"], arrays["colors"], arrays["normals"], str(path), config)


def _from_columns(array: Any, name: str, config: PointCloudConfig) -> RawPointCloud:
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] not in (3, 6, 9):
        raise DataError(name, f"expected an array [N, 3|6|9] (xyz, rgb, normals), "
                              f"got shape {tuple(array.shape)}")
    colors = array[:, 3:6] if array.shape[1] >= 6 else None
    normals = array[:, 6:9] if array.shape[1] == 9 else None
    return _finish(array[:, :3], colors, normals, name, config)


def _as_float(name: str, what: str, value: Any, n: int) -> torch.Tensor:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(name, f"{what} are not numbers ({exc})") from None
    if array.shape != (n, 3):
        raise DataError(name, f"{what} have shape {tuple(array.shape)}, expected {(n, 3)}")
    if not np.isfinite(array).all():
        raise DataError(name, f"{what} contain NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(array))


def _finish(points: Any, colors: Any, normals: Any, name: str,
            config: PointCloudConfig) -> RawPointCloud:
    """Validate the arrays and keep what the options ask for."""
    if np.ndim(points) != 2 or np.shape(points)[1] != 3:
        raise DataError(name, f"expected coordinates [N, 3], got shape {np.shape(points)}")
    n = int(np.shape(points)[0])
    if n == 0:
        raise DataError(name, "empty point cloud (0 points)")
    xyz = _as_float(name, "coordinates", points, n)
    if config.use_colors and colors is not None:
        rgb = _as_float(name, "colours", colors, n)
        # 8-bit colours (0..255) are rescaled; open3d already gives [0, 1]
        colors = rgb / 255.0 if float(rgb.max()) > 1.0 else rgb
    else:
        colors = None
    if config.use_normals:
        if normals is None:
            normals = estimate_normals(xyz)
        else:
            # normals interpolated from a mesh's vertices are shorter than 1
            normals = _as_float(name, "normals", normals, n)
            normals = normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-12)
    else:
        normals = None
    return RawPointCloud(xyz, colors, normals, name)


def estimate_normals(points: torch.Tensor, neighbours: int = 30) -> torch.Tensor:
    """Unit normals from open3d's local plane fits, flipped to point away from the centroid.

    Shapes:
        points: ``[N, 3]`` -> ``[N, 3]``.
    """
    o3d = _o3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.double().numpy()))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=neighbours))
    normals = torch.from_numpy(np.asarray(cloud.normals)).float()
    outward = points - points.mean(0)
    flip = (normals * outward).sum(-1) < 0
    normals[flip] = -normals[flip]
    return normals
