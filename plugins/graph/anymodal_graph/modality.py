"""The ``graph`` :class:`anymodal.ModalitySpec`, built from its options."""

from __future__ import annotations

from typing import Any

from anymodal import ModalitySpec
from anymodal_graph.config import GraphConfig, validate_graph_config
from anymodal_graph.io import load_graph
from anymodal_graph.synthetic import FAMILIES, synthesize_graphs
from anymodal_graph.transforms import transform_graph

__all__ = ["collate_graphs", "make_graph_modality"]


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


def make_graph_modality(config: GraphConfig) -> ModalitySpec:
    """The modality with ``config``'s options bound (``configure`` of the spec)."""
    validate_graph_config(config)
    return ModalitySpec(
        name="graph",
        load=lambda source: load_graph(source, config),
        transform=lambda raw, train: transform_graph(raw, train, config),
        collate=collate_graphs,
        synthesize=lambda n, generator, labels=None: synthesize_graphs(
            n, generator, labels, config
        ),
        default_encoder="graph_gin",
        num_classes=len(FAMILIES),
        config_cls=GraphConfig,
        configure=make_graph_modality,
        description="graphs as torch_geometric Data (.pt, JSON, edge-list CSV)",
    )
