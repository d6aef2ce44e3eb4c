"""The ``graph`` modality and its encoders (entry point ``graph``).

Importing this module stays cheap: torch_geometric is imported only when a graph is read,
made or encoded.
"""

from __future__ import annotations

from typing import Any

from anymodal import define_modality, plugin_hooks
from anymodal_graph.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)
from anymodal_graph.config import GraphConfig, validate_graph_config
from anymodal_graph.encoders import build_gat, build_gin
from anymodal_graph.io import load_graph
from anymodal_graph.synthetic import FAMILIES, synthesize_graphs
from anymodal_graph.transforms import transform_graph

__all__ = ["GRAPH", "anymodal_register_encoders", "anymodal_register_modalities",
           "collate_graphs"]


def collate_graphs(items: list[Any]) -> Any:
    """PyG's ``Batch.from_data_list``: one disjoint graph with a ``batch`` vector.

    Raises:
        ValueError: items whose node features differ in width (different options).
    """
    from torch_geometric.data import Batch

    widths = {int(item.x.shape[1]) for item in items}
    if len(widths) > 1:
        raise ValueError(f"graph items must share one feature_dim, got {sorted(widths)}")
    return Batch.from_data_list(items)


GRAPH = define_modality(
    "graph", GraphConfig, load=load_graph, transform=transform_graph, collate=collate_graphs,
    synthesize=synthesize_graphs, validate=validate_graph_config, num_classes=len(FAMILIES),
    default_encoder="graph_gin",
    description="graphs as torch_geometric Data (.pt, JSON, edge-list CSV)",
)

anymodal_register_modalities, anymodal_register_encoders = plugin_hooks(
    modalities=[GRAPH], encoders=[build_gin, build_gat])
