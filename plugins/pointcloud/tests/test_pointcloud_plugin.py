"""The plugin as anymodal sees it: registration, contract checks, synthetic data."""

from __future__ import annotations

import open3d as o3d
import pytest
import torch

import anymodal
from anymodal.testing import (
    check_encoder,
    check_modality,
    check_registered,
    imported_modules,
)
from anymodal_pointcloud.synthetic import PRIMITIVES


def test_registered_through_the_entry_point():
    encoders = {"pointcloud_pointnet", "pointcloud_pointbert_tiny"}
    info = check_registered("pointcloud", "anymodal-pointcloud", encoders)
    assert set(info.encoders) == encoders


@pytest.mark.slow  # a fresh interpreter imports torch and every installed plugin
def test_listing_plugins_does_not_import_open3d():
    code = "import anymodal; assert 'pointcloud' in anymodal.list_modalities()"
    assert imported_modules(code, ["open3d"]) == []


@pytest.mark.parametrize("options", [{}, {"use_colors": True, "use_normals": True}])
def test_check_modality_with_bad_files(tmp_path, options):
    corrupt = tmp_path / "corrupt.pcd"
    corrupt.write_text("not a pcd file\n")
    faceless = tmp_path / "faceless.obj"
    mesh = o3d.geometry.TriangleMesh()
    mesh.vertices = o3d.utility.Vector3dVector([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert o3d.io.write_triangle_mesh(str(faceless), mesh)
    bad = [str(tmp_path / "missing.ply"), str(corrupt), str(faceless),
           str(tmp_path / "cloud.unknown")]
    (tmp_path / "cloud.unknown").write_text("1 2 3\n")
    spec = anymodal.get_modality("pointcloud", num_points=64, **options)
    check_modality(spec, bad_sources=bad)


def test_synthetic_items_follow_labels_and_options():
    spec = anymodal.get_modality("pointcloud", num_points=96, use_colors=True)
    assert spec.num_classes == len(PRIMITIVES) == 5
    labels = torch.arange(10)
    items = spec.synthesize(10, torch.Generator().manual_seed(0), labels)
    batch = spec.collate(items)
    assert batch.shape == (10, 96, 6)
    assert batch[:, :, :3].norm(dim=-1).max() <= 1 + 1e-5
    # the same class gets the same colour family, another class another one
    mean_rgb = batch[:, :, 3:].mean(1)
    assert (mean_rgb[0] - mean_rgb[5]).abs().max() < 0.05
    assert (mean_rgb[0] - mean_rgb[1]).abs().max() > 0.3


def test_synthetic_shapes_are_distinct_primitives():
    spec = anymodal.get_modality("pointcloud", num_points=512, synth_noise=0.0)
    sphere, cube = spec.synthesize(2, torch.Generator().manual_seed(0), torch.tensor([0, 1]))
    radius = sphere.norm(dim=1)
    # a (stretched) sphere's radii spread less than a cube's, from face centres to corners
    assert radius.std() < cube.norm(dim=1).std()


def test_collate_refuses_mixed_shapes():
    spec = anymodal.get_modality("pointcloud", num_points=32)
    with pytest.raises(ValueError, match="share one shape"):
        spec.collate([torch.zeros(32, 3), torch.zeros(32, 6)])


@pytest.mark.parametrize("name", ["pointcloud_pointnet", "pointcloud_pointbert_tiny"])
def test_check_encoder_xyz(name):
    check_encoder(anymodal.get_encoder_spec(name), modality_params={"num_points": 128})


@pytest.mark.parametrize("name", ["pointcloud_pointnet", "pointcloud_pointbert_tiny"])
def test_check_encoder_with_colours_and_normals(name):
    check_encoder(anymodal.get_encoder_spec(name), params={"in_channels": 9},
                  modality_params={"num_points": 128, "use_colors": True,
                                   "use_normals": True})
