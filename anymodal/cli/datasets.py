"""``anymodal datasets list|build``: the data set builders that plugins provide."""

from __future__ import annotations

import argparse
from typing import Any

from anymodal.cli.output import Table, emit
from anymodal.errors import AnymodalError

__all__ = ["add_parsers", "cmd_datasets"]


def add_parsers(sub: Any) -> None:
    """Add ``datasets`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("datasets", help="list or build data sets that plugins provide",
                       description="anymodal datasets list | anymodal datasets build NAME "
                       "OUT_DIR [--limit N] [--modalities a,b] [--missing F] [key=value ...]. "
                       "'anymodal describe NAME' lists a builder's options.")
    p.add_argument("action", choices=["list", "build"])
    p.add_argument("name", nargs="?", help="the data set (see: anymodal datasets list)")
    p.add_argument("out_dir", nargs="?", help="where its files and manifest are written")
    p.add_argument("params", nargs="*", help="key=value options of the builder")
    p.add_argument("--limit", type=int, default=None, help="build only the first N samples")
    p.add_argument("--modalities", default=None, help="comma-separated subset to build")
    p.add_argument("--missing", type=float, default=None,
                   help="fraction of rows built with some modalities dropped")
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    p.set_defaults(func=cmd_datasets)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep:
            raise AnymodalError(f"dataset option {item!r} must look like key=value")
        params[key] = value
    if args.limit is not None:
        params["limit"] = args.limit
    if args.modalities:
        params["modalities"] = [m.strip() for m in args.modalities.split(",") if m.strip()]
    if args.missing is not None:
        params["missing"] = args.missing
    return params


def cmd_datasets(args: argparse.Namespace) -> int:
    """List the builders, or run one into OUT_DIR."""
    from anymodal.plugin_host.manager import build_dataset_files, get_plugin_manager

    registry = get_plugin_manager().datasets
    if args.action == "list":
        rows = [[name, entry.spec.description, entry.plugin] for name, entry in registry.items()]
        emit([dict(zip(("name", "description", "plugin"), r)) for r in rows],
             [Table("data set builders", ["name", "description", "plugin"], rows)], args.json)
        return 0
    if not args.name or not args.out_dir:
        raise AnymodalError("anymodal datasets build needs NAME and OUT_DIR")
    manifest = build_dataset_files(args.name, args.out_dir, **_params(args))
    print(f"manifest: {manifest}")
    return 0
