"""Graph encoders ``graph_gin`` and ``graph_gat``.

The factories import the modules, and with them torch_geometric, only when an encoder is
built, so that listing plugins stays fast.
"""

from __future__ import annotations

from typing import Any

from anymodal_graph.config import GATConfig, GINConfig

__all__ = ["build_gat", "build_gin"]


def build_gin(config: GINConfig) -> Any:
    from anymodal_graph.encoders.gin import GINEncoder

    return GINEncoder(config)


def build_gat(config: GATConfig) -> Any:
    from anymodal_graph.encoders.gat import GATEncoder

    return GATEncoder(config)
