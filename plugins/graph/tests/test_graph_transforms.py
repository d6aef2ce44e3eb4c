"""The transform: undirected edges, fixed feature width, structural features, DropEdge."""

from __future__ import annotations

import pytest
import torch

import anymodal
from anymodal_graph.config import GraphConfig
from anymodal_graph.io import RawGraph
from anymodal_graph.transforms import node_degrees, transform_graph


def _star(n: int = 6) -> RawGraph:
    edges = torch.tensor([[0] * (n - 1), list(range(1, n))])
    return RawGraph(None, edges, n, "<star>")


def test_edges_become_undirected_without_duplicates():
    raw = RawGraph(None, torch.tensor([[0, 0, 1], [1, 1, 2]]), 3, "<g>")
    item = transform_graph(raw, False, GraphConfig(feature_dim=4))
    pairs = set(map(tuple, item.edge_index.T.tolist()))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1)} and item.edge_index.shape == (2, 4)
    directed = transform_graph(raw, False, GraphConfig(feature_dim=4, undirected=False))
    assert directed.edge_index.tolist() == [[0, 1], [1, 2]]


def test_degree_one_hot_with_a_capped_last_column():
    item = transform_graph(_star(7), False, GraphConfig(feature_dim=4))
    assert item.x.shape == (7, 4) and item.x.dtype == torch.float32
    assert torch.equal(item.x.sum(1), torch.ones(7))
    assert item.x[0].argmax() == 3  # degree 6, capped at feature_dim - 1
    assert (item.x[1:].argmax(1) == 1).all()  # leaves have degree 1


def test_directed_degree_counts_both_ends():
    edges = torch.tensor([[0, 1], [1, 2]])
    assert node_degrees(edges, 3, undirected=False).tolist() == [1, 2, 1]


def test_constant_features_and_zero_padding():
    item = transform_graph(_star(), False, GraphConfig(feature_dim=3,
                                                       structural_features="constant"))
    assert torch.equal(item.x, torch.tensor([[1.0, 0.0, 0.0]]).expand(6, 3))
    raw = RawGraph(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0], [1]]), 2, "<g>")
    padded = transform_graph(raw, False, GraphConfig(feature_dim=5))
    assert torch.equal(padded.x, torch.tensor([[1.0, 2.0, 0, 0, 0], [3.0, 4.0, 0, 0, 0]]))


def test_eval_is_deterministic_and_training_augments():
    config = GraphConfig(feature_dim=8, edge_dropout=0.5, feature_noise=0.1)
    raw = RawGraph(None, torch.randint(0, 30, (2, 80), generator=torch.Generator().manual_seed(0)),
                   30, "<g>")
    a, b = transform_graph(raw, False, config), transform_graph(raw, False, config)
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    torch.manual_seed(0)
    train = transform_graph(raw, True, config)
    assert train.edge_index.shape[1] < a.edge_index.shape[1]
    # DropEdge keeps the graph undirected: every kept edge has its reverse
    kept = set(map(tuple, train.edge_index.T.tolist()))
    assert all((v, u) in kept for u, v in kept)
    assert not torch.equal(train.x, a.x)
    assert (train.x - a.x).abs().max() < 1.0  # noise, not different features


@pytest.mark.parametrize("params", [{"feature_dim": 0}, {"structural_features": "pagerank"},
                                    {"edge_dropout": 1.0}, {"min_nodes": 10, "max_nodes": 5}])
def test_bad_options_raise_config_error(params):
    with pytest.raises(anymodal.ConfigError, match="graph"):
        anymodal.get_modality("graph", **params)
