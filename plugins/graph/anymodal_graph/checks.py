"""Doctor check for the graph plugin: torch_geometric message passing."""

from __future__ import annotations

from typing import Any

from anymodal import DoctorCheck, hookimpl


def _torch_geometric() -> str:
    import torch
    import torch_geometric
    from torch_geometric.nn import GCNConv

    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    out = GCNConv(2, 3)(torch.ones(3, 2), edges)
    if tuple(out.shape) != (3, 3):
        raise RuntimeError(f"a GCN layer gave shape {tuple(out.shape)}, expected (3, 3)")
    return f"{torch_geometric.__version__} (a GCN layer ran)"


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register this plugin's ``anymodal doctor`` checks."""
    register(DoctorCheck("graph: torch_geometric", _torch_geometric,
                         "make install; elsewhere: pip install 'torch-geometric==2.8.*'",
                         ("torch-geometric",)))
