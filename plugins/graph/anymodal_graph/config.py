"""Option and hyper-parameter dataclasses of the graph modality and its encoders.

This module imports nothing heavy: the plugin manager reads it while listing plugins.
"""

from __future__ import annotations

from dataclasses import dataclass

from anymodal import ConfigError

__all__ = [
    "POOLINGS",
    "STRUCTURAL_FEATURES",
    "GATConfig",
    "GINConfig",
    "GraphConfig",
    "validate_graph_config",
    "validate_pooling",
]

STRUCTURAL_FEATURES = ("degree", "constant")
POOLINGS = ("mean", "add", "max")


@dataclass
class GraphConfig:
    """Options of the ``graph`` modality.

    An item is a ``torch_geometric.data.Data`` with ``x`` ``[num_nodes, feature_dim]``
    float32 and ``edge_index`` ``[2, num_edges]`` int64; other attributes of the source
    (``edge_attr``, ``y``...) are dropped, so that every item batches with every other.

    Node features of a fixed width ``feature_dim``:

    - a graph that has node features narrower than ``feature_dim`` is padded with zero
      columns on the right; one whose features are wider is refused with a
      :class:`anymodal.DataError` (truncating would silently drop information: raise
      ``feature_dim`` instead);
    - a graph without node features (an edge-list CSV, JSON without feature lists) gets
      ``structural_features``: ``"degree"``, the one-hot of each node's degree (degrees
      of ``feature_dim - 1`` or more share the last column), or ``"constant"``, a 1 in
      the first column.

    Args:
        feature_dim: width ``F`` of every node-feature row.
        structural_features: the features of graphs that have none.
        undirected: add the reverse of every edge (and drop duplicates), as most graph
            files list each undirected edge once.
        edge_dropout: training augmentation (DropEdge): the probability of removing each
            undirected edge; ``0`` turns it off.
        feature_noise: training augmentation: std of Gaussian noise added to node features.
        min_nodes: smallest synthetic graph.
        max_nodes: largest synthetic graph.
    """

    feature_dim: int = 16
    structural_features: str = "degree"
    undirected: bool = True
    edge_dropout: float = 0.0
    feature_noise: float = 0.0
    min_nodes: int = 8
    max_nodes: int = 20


def validate_graph_config(config: GraphConfig) -> GraphConfig:
    """Raise :class:`anymodal.ConfigError` on an option value out of range."""
    what = "modality 'graph'"
    if config.feature_dim < 1:
        raise ConfigError(f"{what}: feature_dim must be >= 1, got {config.feature_dim}")
    if config.structural_features not in STRUCTURAL_FEATURES:
        raise ConfigError(f"{what}: structural_features={config.structural_features!r}; "
                          f"valid choices: {', '.join(STRUCTURAL_FEATURES)}")
    if not 0.0 <= config.edge_dropout < 1.0:
        raise ConfigError(f"{what}: edge_dropout must be in [0, 1), got {config.edge_dropout}")
    if not 4 <= config.min_nodes <= config.max_nodes:
        raise ConfigError(f"{what}: need 4 <= min_nodes <= max_nodes, got "
                          f"{config.min_nodes}, {config.max_nodes}")
    return config


def validate_pooling(name: str, pooling: str) -> None:
    """Raise :class:`anymodal.ConfigError` on an unknown pooling."""
    if pooling not in POOLINGS:
        raise ConfigError(f"encoder {name!r}: pooling={pooling!r}; valid choices: "
                          + ", ".join(POOLINGS))


@dataclass
class GINConfig:
    """Hyper-parameters of ``graph_gin`` (Xu et al., "How Powerful are Graph Neural Networks?").

    Args:
        in_dim: node-feature width (set from the modality's ``feature_dim``).
        hidden: width of every GIN layer.
        num_layers: GIN layers (each: sum over neighbours, then a 2-layer MLP).
        width: output width.
        pooling: graph readout: ``"mean"``, ``"add"`` or ``"max"`` over nodes.
        readout_all_layers: pool every layer's node states and concatenate them (the GIN
            paper's readout) rather than only the last layer's.
        train_eps: learn GIN's ``epsilon`` (GIN-eps) instead of fixing it to 0 (GIN-0).
        dropout: dropout before the output layer.
    """

    in_dim: int = 16
    hidden: int = 64
    num_layers: int = 3
    width: int = 128
    pooling: str = "add"
    readout_all_layers: bool = True
    train_eps: bool = False
    dropout: float = 0.0


@dataclass
class GATConfig:
    """Hyper-parameters of ``graph_gat`` (graph attention, Velickovic et al.; GATv2 option).

    Args:
        in_dim: node-feature width (set from the modality's ``feature_dim``).
        hidden: width of each attention head.
        heads: attention heads per layer (their outputs are concatenated).
        num_layers: attention layers.
        width: output width.
        pooling: graph readout: ``"mean"``, ``"add"`` or ``"max"`` over nodes.
        v2: use GATv2's dynamic attention (Brody et al.) instead of the original GAT.
        dropout: dropout on node states between layers.
        attention_dropout: dropout on the attention coefficients.
    """

    in_dim: int = 16
    hidden: int = 32
    heads: int = 4
    num_layers: int = 2
    width: int = 128
    pooling: str = "mean"
    v2: bool = False
    dropout: float = 0.0
    attention_dropout: float = 0.0
