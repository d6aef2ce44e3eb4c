"""``graph_gin``: Graph Isomorphism Network (Xu et al., ICLR 2019) with a graph readout."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn
from torch_geometric.nn import GINConv

from anymodal_graph.config import GINConfig, validate_pooling
from anymodal_graph.encoders.pooling import batch_vector, check_features, pool

__all__ = ["GINEncoder"]


def _mlp(in_dim: int, hidden: int) -> nn.Sequential:
    # Layer norm per node stands in for the paper's batch norm: a graph's embedding then
    # depends on that graph alone, and no running statistics change in a forward pass.
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden))


class GINEncoder(nn.Module):
    """GIN layers ``h' = MLP((1 + eps) h + sum of neighbours' h)``, then pooling.

    With ``readout_all_layers`` the input features and every layer's states are pooled and
    concatenated, as in the GIN paper, so that shallow and deep structure both count.

    Shapes:
        input: a PyG ``Batch`` of ``B`` graphs with ``x`` ``[N, in_dim]``;
        output: ``[B, width]``.
    """

    def __init__(self, config: GINConfig) -> None:
        super().__init__()
        validate_pooling("graph_gin", config.pooling)
        self.config = config
        self.width = config.width
        dims = [config.in_dim] + [config.hidden] * config.num_layers
        self.convs = nn.ModuleList(
            GINConv(_mlp(d_in, d_out), train_eps=config.train_eps)
            for d_in, d_out in itertools.pairwise(dims)
        )
        readout = sum(dims) if config.readout_all_layers else dims[-1]
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(readout, config.width))

    def forward(self, batch: Any) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        x, edge_index = batch.x.float(), batch.edge_index
        check_features("graph_gin", x, self.config.in_dim)
        assignment, num_graphs = batch_vector(batch)
        states = [x]
        for conv in self.convs:
            x = torch.relu(conv(x, edge_index))
            states.append(x)
        if not self.config.readout_all_layers:
            states = states[-1:]
        pooled = [pool(self.config.pooling, s, assignment, num_graphs) for s in states]
        return self.head(torch.cat(pooled, dim=-1))
