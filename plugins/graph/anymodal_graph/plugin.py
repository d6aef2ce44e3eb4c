"""The hook implementations of anymodal-graph (entry point ``graph``).

Importing this module stays cheap: torch_geometric is imported only when a graph is read,
made or encoded.
"""

from __future__ import annotations

from typing import Any

from anymodal import EncoderSpec, hookimpl
from anymodal_graph.config import GATConfig, GINConfig, GraphConfig
from anymodal_graph.encoders import build_gat, build_gin
from anymodal_graph.modality import make_graph_modality
from anymodal_graph.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)


@hookimpl
def anymodal_register_modalities(register: Any) -> None:
    register(make_graph_modality(GraphConfig()))


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("graph_gin", "graph", build_gin, GINConfig,
                         "Graph Isomorphism Network + mean/add/max pooling"))
    register(EncoderSpec("graph_gat", "graph", build_gat, GATConfig,
                         "graph attention (GAT/GATv2) + mean/add/max pooling"))
