"""Graph readout shared by the encoders: node states -> one vector per graph."""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

__all__ = ["batch_vector", "check_features", "pool"]

_POOLS = {"mean": global_mean_pool, "add": global_add_pool, "max": global_max_pool}


def batch_vector(batch: Any) -> tuple[torch.Tensor, int]:
    """The node-to-graph assignment and the graph count of a ``Batch`` (or a lone ``Data``)."""
    assignment = getattr(batch, "batch", None)
    if assignment is None:
        return torch.zeros(batch.num_nodes, dtype=torch.long, device=batch.x.device), 1
    return assignment, int(batch.num_graphs)


def check_features(name: str, x: torch.Tensor, in_dim: int) -> None:
    """Raise a ValueError naming the expected node-feature width."""
    if x.dim() != 2 or x.shape[1] != in_dim:
        raise ValueError(f"{name} expects node features [num_nodes, {in_dim}], got "
                         f"{tuple(x.shape)}; set the encoder param in_dim to the modality's "
                         "feature_dim")


def pool(kind: str, x: torch.Tensor, assignment: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Pool node states per graph.

    Shapes:
        x: ``[N, D]``, assignment: ``[N]`` -> ``[num_graphs, D]``.
    """
    return _POOLS[kind](x, assignment, size=num_graphs)
