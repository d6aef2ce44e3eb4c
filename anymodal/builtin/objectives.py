"""Registers the built-in objectives (one module each under ``anymodal.objectives``)."""

from __future__ import annotations

from typing import Any

from anymodal.plugin_host.hookspecs import hookimpl


@hookimpl
def anymodal_register_objectives(register: Any) -> None:
    """Register every objective under ``anymodal.objectives`` (global_contrastive too)."""
    from anymodal.objectives import builtin_objective_specs

    for spec in builtin_objective_specs():
        register(spec)
    from anymodal.objectives import global_contrastive

    register(global_contrastive.SPEC)
