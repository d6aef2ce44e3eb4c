"""``anymodal describe NAME``: every option of a modality, encoder, objective or data set.

Each option is listed with its type, its default and the meaning its config dataclass's
docstring gives (``Args:`` section). ``anymodal describe config`` (or a section of it:
``model``, ``data``, ``optim``, ``train``, ``logging``) lists the experiment's own keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from anymodal.cli.output import Table, emit

__all__ = ["KINDS", "add_parsers", "cmd_describe", "describe"]

# registry attribute -> the noun used in titles
KINDS = {"modalities": "modality", "encoders": "encoder", "objectives": "objective",
         "datasets": "data set builder"}
SECTIONS = ("config", "model", "objective", "data", "optim", "train", "logging")


def add_parsers(sub: Any) -> None:
    """Add ``describe`` to the ``anymodal`` subparsers."""
    p = sub.add_parser(
        "describe", help="options of a modality, encoder, objective or data set builder",
        description="List every option of NAME (a registered modality, encoder, objective "
        "or data set builder, see 'anymodal plugins'): its type, default and meaning. "
        "NAME may also be 'config' or one of its sections (model, objective, data, optim, "
        "train, logging) for the recipe's own keys.")
    p.add_argument("name", help="what to describe")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_describe)


def _registered(kind: str, name: str, entry: Any) -> dict[str, Any]:
    from anymodal.utils.docfields import config_options

    spec = entry.spec
    found: dict[str, Any] = {
        "kind": KINDS[kind], "name": name, "plugin": entry.plugin,
        "description": getattr(spec, "description", ""),
        "options": [dataclasses.asdict(o) for o in config_options(spec.config_cls)],
    }
    if kind == "encoders":
        found["modality"] = spec.modality
    if kind == "modalities":
        from anymodal.plugin_host.manager import list_encoders

        found["default_encoder"] = spec.default_encoder
        found["encoders"] = list_encoders(name)
    return found


def _section(name: str) -> dict[str, Any]:
    from anymodal.config import ExperimentConfig
    from anymodal.utils.docfields import config_options

    prefix = "" if name == "config" else f"{name}."
    options = [o for o in config_options(ExperimentConfig, "") if o.name.startswith(prefix)
               or o.name == name]
    return {"kind": "config section", "name": name, "plugin": "anymodal",
            "description": "keys of a recipe (anymodal config show RECIPE prints them "
            "resolved)", "options": [dataclasses.asdict(o) for o in options]}


def describe(name: str) -> list[dict[str, Any]]:
    """What ``name`` is, in every registry that has it, with its options.

    Args:
        name: a registered name, ``config``, or a config section.

    Raises:
        PluginError: nothing is called ``name`` (the message lists close names).
    """
    from anymodal.errors import PluginError
    from anymodal.plugin_host.manager import get_plugin_manager
    from anymodal.plugin_host.registry import suggest

    manager = get_plugin_manager()
    found = [_registered(kind, name, entry) for kind in KINDS
             for entry_name, entry in getattr(manager, kind).items() if entry_name == name]
    if name in SECTIONS:
        found.append(_section(name))
    if not found:
        names = [n for kind in KINDS for n in getattr(manager, kind).names()]
        raise PluginError(f"nothing is called {name!r}; {suggest(name, [*names, *SECTIONS])}")
    return found


def _show(default: Any) -> str:
    """A default as a recipe would write it (``null``, ``[]``, ``{}``; strings bare)."""
    return default if isinstance(default, str) else json.dumps(default, default=str)


def _table(found: dict[str, Any]) -> Table:
    title = f"{found['kind']} {found['name']!r} ({found['plugin']})"
    if found["description"]:
        title += f": {found['description']}"
    notes = []
    if "modality" in found:
        notes.append(f"encodes modality {found['modality']!r}")
    if "encoders" in found:
        notes.append(f"encoders: {', '.join(found['encoders']) or '-'} (default "
                     f"{found['default_encoder']})")
    if not found["options"]:
        notes.append("takes no options")
    rows = [[o["name"], o["type"], "(required)" if o["required"] else _show(o["default"]),
             o["meaning"]] for o in found["options"]]
    return Table(title, ["option", "type", "default", "meaning"], rows, notes, detail=True)


def cmd_describe(args: argparse.Namespace) -> int:
    """Print one table per thing called NAME (or JSON)."""
    found = describe(args.name)
    emit(found, [_table(f) for f in found], args.json)
    return 0
