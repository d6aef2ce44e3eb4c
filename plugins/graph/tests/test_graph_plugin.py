"""The plugin as anymodal sees it: registration, contract checks, synthetic families."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.data import Batch

import anymodal
from anymodal.testing import (
    check_encoder,
    check_modality,
    check_registered,
    imported_modules,
)
from anymodal_graph.synthetic import FAMILIES
from anymodal_graph.transforms import node_degrees


def test_registered_through_the_entry_point():
    info = check_registered("graph", "anymodal-graph", ["graph_gin", "graph_gat"])
    assert set(info.encoders) == {"graph_gin", "graph_gat"}


@pytest.mark.slow  # a fresh interpreter imports torch and every installed plugin
def test_listing_plugins_does_not_import_torch_geometric():
    code = "import anymodal; assert 'graph' in anymodal.list_modalities(); anymodal.create_encoder"
    assert imported_modules(code, ["torch_geometric"]) == []


def test_check_modality_with_bad_files(tmp_path):
    oob = tmp_path / "oob.json"
    oob.write_text(json.dumps({"nodes": 2, "edges": [[0, 2]]}))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad = [str(tmp_path / "missing.pt"), str(oob), str(corrupt), str(empty)]
    check_modality(anymodal.get_modality("graph"), bad_sources=bad)


def test_synthetic_families_have_their_structure():
    spec = anymodal.get_modality("graph", feature_dim=32, min_nodes=9, max_nodes=16)
    assert spec.num_classes == len(FAMILIES) == 5
    cycle, grid, tree, star, sbm = spec.synthesize(5, torch.Generator().manual_seed(0),
                                                   torch.arange(5))
    degree = {name: node_degrees(g.edge_index, g.num_nodes, True)
              for name, g in zip(FAMILIES, (cycle, grid, tree, star, sbm))}
    assert (degree["cycle"] == 2).all()
    assert set(degree["grid"].tolist()) <= {2, 3, 4} and (degree["grid"] == 2).sum() == 4
    assert tree.edge_index.shape[1] == 2 * (tree.num_nodes - 1)  # n - 1 undirected edges
    assert degree["star"].max() == star.num_nodes - 1 and (degree["star"] == 1).sum() == \
        star.num_nodes - 1
    assert sbm.edge_index.shape[1] > 0
    for g in (cycle, grid, tree, star, sbm):
        assert g.x.shape == (g.num_nodes, 32)


def test_collate_is_a_pyg_batch():
    spec = anymodal.get_modality("graph", feature_dim=8)
    items = spec.synthesize(4, torch.Generator().manual_seed(0))
    batch = spec.collate(items)
    assert isinstance(batch, Batch) and batch.num_graphs == 4
    assert batch.x.shape == (sum(g.num_nodes for g in items), 8)
    with pytest.raises(ValueError, match="feature_dim"):
        spec.collate([items[0], anymodal.get_modality("graph", feature_dim=4).synthesize(
            1, torch.Generator().manual_seed(0))[0]])


@pytest.mark.parametrize("pooling", ["mean", "add", "max"])
def test_check_encoder_gin(pooling):
    check_encoder(anymodal.get_encoder_spec("graph_gin"), params={"pooling": pooling})


@pytest.mark.parametrize("params", [{"pooling": "mean"}, {"pooling": "add", "v2": True},
                                    {"pooling": "max", "heads": 2}])
def test_check_encoder_gat(params):
    check_encoder(anymodal.get_encoder_spec("graph_gat"), params=params)


def test_check_encoder_with_other_options():
    check_encoder(anymodal.get_encoder_spec("graph_gin"),
                  params={"in_dim": 4, "readout_all_layers": False, "train_eps": True},
                  modality_params={"feature_dim": 4, "structural_features": "constant"})
