"""``graph_gat``: graph attention layers (GAT, or GATv2) with a graph readout."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.nn import GATConv, GATv2Conv

from anymodal_graph.config import GATConfig, validate_pooling
from anymodal_graph.encoders.pooling import batch_vector, check_features, pool

__all__ = ["GATEncoder"]


class GATEncoder(nn.Module):
    """Multi-head attention over neighbours (self-loops added), ELU, then pooling.

    Shapes:
        input: a PyG ``Batch`` of ``B`` graphs with ``x`` ``[N, in_dim]``;
        output: ``[B, width]``.
    """

    def __init__(self, config: GATConfig) -> None:
        super().__init__()
        validate_pooling("graph_gat", config.pooling)
        self.config = config
        self.width = config.width
        layer = GATv2Conv if config.v2 else GATConv
        dim = config.in_dim
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(config.num_layers):
            self.convs.append(layer(dim, config.hidden, heads=config.heads, concat=True,
                                    dropout=config.attention_dropout))
            dim = config.hidden * config.heads
            self.norms.append(nn.LayerNorm(dim))
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(dim, config.width)

    def forward(self, batch: Any) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        x, edge_index = batch.x.float(), batch.edge_index
        check_features("graph_gat", x, self.config.in_dim)
        assignment, num_graphs = batch_vector(batch)
        for conv, norm in zip(self.convs, self.norms):
            x = self.dropout(torch.nn.functional.elu(norm(conv(x, edge_index))))
        return self.head(pool(self.config.pooling, x, assignment, num_graphs))
