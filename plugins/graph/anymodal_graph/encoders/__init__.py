"""Graph encoders ``graph_gin`` and ``graph_gat``.

The factories import the modules, and with them torch_geometric, only when an encoder is
built, so that listing plugins stays fast.
"""

from __future__ import annotations

from typing import Any

from anymodal import encoder
from anymodal_graph.config import GATConfig, GINConfig

__all__ = ["build_gat", "build_gin"]


@encoder("graph_gin", config=GINConfig, binds={"in_dim": "feature_dim"},
         description="Graph Isomorphism Network + mean/add/max pooling")
def build_gin(config: GINConfig) -> Any:
    """The ``graph_gin`` module for ``config``."""
    from anymodal_graph.encoders.gin import GINEncoder

    return GINEncoder(config)


@encoder("graph_gat", config=GATConfig, binds={"in_dim": "feature_dim"},
         description="graph attention (GAT/GATv2) + mean/add/max pooling")
def build_gat(config: GATConfig) -> Any:
    """The ``graph_gat`` module for ``config``."""
    from anymodal_graph.encoders.gat import GATEncoder

    return GATEncoder(config)
