"""N-modality contrastive objectives, one module each. Filled by the objectives issue."""

from __future__ import annotations

from anymodal.types import ObjectiveSpec


def builtin_objective_specs() -> list[ObjectiveSpec]:
    """The specs of every built-in objective, in registration order."""
    return []
