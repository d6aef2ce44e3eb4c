"""Encoder behaviour beyond the contract: node-order invariance, batching, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

import anymodal


def _graphs() -> list[Data]:
    spec = anymodal.get_modality("graph")
    return spec.synthesize(3, torch.Generator().manual_seed(0), torch.tensor([0, 2, 4]))


def _relabel(g: Data, perm: torch.Tensor) -> Data:
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    return Data(x=g.x[perm], edge_index=inverse[g.edge_index], num_nodes=g.num_nodes)


@pytest.mark.parametrize("name", ["graph_gin", "graph_gat"])
def test_node_order_does_not_matter(name):
    torch.manual_seed(0)
    encoder = anymodal.create_encoder(name, width=16).eval()
    graphs = _graphs()
    shuffled = [_relabel(g, torch.randperm(g.num_nodes)) for g in graphs]
    with torch.no_grad():
        a = encoder(Batch.from_data_list(graphs))
        b = encoder(Batch.from_data_list(shuffled))
    assert a.shape == (3, 16)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["graph_gin", "graph_gat"])
def test_a_lone_data_is_one_graph(name):
    torch.manual_seed(0)
    encoder = anymodal.create_encoder(name).eval()
    g = _graphs()[1]
    with torch.no_grad():
        torch.testing.assert_close(encoder(g), encoder(Batch.from_data_list([g])))


@pytest.mark.parametrize("name", ["graph_gin", "graph_gat"])
def test_wrong_feature_width_names_the_param(name):
    encoder = anymodal.create_encoder(name, in_dim=8)
    with pytest.raises(ValueError, match="in_dim"):
        encoder(Batch.from_data_list(_graphs()))


@pytest.mark.parametrize("name", ["graph_gin", "graph_gat"])
def test_bad_pooling_is_a_config_error(name):
    with pytest.raises(anymodal.ConfigError, match="pooling='sum'"):
        anymodal.create_encoder(name, pooling="sum")
