"""``anymodal plugins``: the loaded plugins, what each provides, and the ones that failed."""

from __future__ import annotations

import argparse
from typing import Any

from anymodal.cli.output import Table, emit

__all__ = ["KINDS", "add_parsers", "cmd_plugins"]

# What a plugin can provide, as PluginInfo attribute names.
KINDS = ("modalities", "encoders", "objectives", "datasets", "commands", "doctor_checks")


def add_parsers(sub: Any) -> None:
    """Add ``plugins`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("plugins", help="list plugins, what they provide, and failures",
                       description="List the loaded plugins (built-ins first), what each "
                       "provides, and every plugin that failed to load with the reason. "
                       "'anymodal describe NAME' explains one name's options.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)


def _provides(row: dict[str, Any]) -> str:
    parts = [f"{kind.replace('_', ' ')}: {', '.join(row[kind])}" for kind in KINDS
             if row.get(kind)]
    return "; ".join(parts) or "-"


def cmd_plugins(args: argparse.Namespace) -> int:
    """Print the plugin table (or JSON)."""
    from anymodal._version import __version__
    from anymodal.plugin_host.manager import get_plugin_manager

    manager = get_plugin_manager()
    rows = [{"plugin": p.name, "distribution": p.distribution, "version": p.version,
             "builtin": p.builtin,
             **{kind: list(getattr(p, kind, [])) for kind in KINDS}}
            for p in manager.plugins.values()]
    failures = [{"plugin": f.name, "distribution": f.distribution, "version": f.version,
                 "reason": f.reason} for f in manager.failures]
    tables = [Table(f"anymodal {__version__} plugins", ["plugin", "distribution", "provides"],
                    [[r["plugin"], f"{r['distribution']} {r['version']}", _provides(r)]
                     for r in rows], detail=True)]
    if failures:
        tables.append(Table("plugins that failed to load", ["plugin", "distribution", "reason"],
                            [[f["plugin"], f"{f['distribution']} {f['version']}", f["reason"]]
                             for f in failures], detail=True))
    emit({"plugins": rows, "failures": failures}, tables, args.json)
    return 0
