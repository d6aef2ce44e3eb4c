"""From a :class:`RawGraph` to a model-ready ``torch_geometric.data.Data``.

Steps: make the edges undirected (when asked) and drop duplicate edges; fix the node
features to ``feature_dim`` columns (zero-padding given features, or structural features
for graphs without any); in training only, DropEdge and feature noise. Structural
features are computed before DropEdge, so they describe the graph, not the augmentation.
"""

from __future__ import annotations

from typing import Any

import torch

from anymodal_graph.config import GraphConfig
from anymodal_graph.io import RawGraph

__all__ = ["node_degrees", "structural_features", "transform_graph"]


def transform_graph(raw: RawGraph, train: bool, config: GraphConfig) -> Any:
    """The item of ``raw``: ``Data(x=[N, feature_dim] float32, edge_index=[2, E] int64)``.

    Args:
        raw: a loaded graph.
        train: turn augmentation on (drawn from torch's global generator).
        config: the modality's options.
    """
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce, dropout_edge, to_undirected

    n = raw.num_nodes
    edge_index = (to_undirected(raw.edge_index, num_nodes=n) if config.undirected
                  else coalesce(raw.edge_index, num_nodes=n))
    if raw.x is None:
        x = structural_features(edge_index, n, config)
    else:
        x = torch.zeros(n, config.feature_dim)
        x[:, : raw.x.shape[1]] = raw.x  # narrower features are zero-padded on the right
    if train and config.edge_dropout > 0:
        edge_index, _ = dropout_edge(edge_index, p=config.edge_dropout,
                                     force_undirected=config.undirected, training=True)
    if train and config.feature_noise > 0:
        x = x + config.feature_noise * torch.randn_like(x)
    return Data(x=x, edge_index=edge_index, num_nodes=n)


def node_degrees(edge_index: torch.Tensor, num_nodes: int, undirected: bool) -> torch.Tensor:
    """Each node's degree: its count of neighbours (undirected) or of incident edges.

    Shapes:
        edge_index: ``[2, E]`` -> ``[num_nodes]`` int64.
    """
    ends = edge_index[0] if undirected else edge_index.reshape(-1)  # both directions listed
    return torch.bincount(ends, minlength=num_nodes)


def structural_features(edge_index: torch.Tensor, num_nodes: int,
                        config: GraphConfig) -> torch.Tensor:
    """Features for a graph that has none: degree one-hot or a constant.

    Shapes:
        output: ``[num_nodes, config.feature_dim]``.
    """
    x = torch.zeros(num_nodes, config.feature_dim)
    if config.structural_features == "constant":
        x[:, 0] = 1.0
        return x
    degree = node_degrees(edge_index, num_nodes, config.undirected)
    x[torch.arange(num_nodes), degree.clamp(max=config.feature_dim - 1)] = 1.0
    return x
