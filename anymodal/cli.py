"""The ``anymodal`` command line.

``anymodal plugins|doctor|demo|train|embed|index|search|eval|report``; ``--help`` on each.
Heavy modules are imported by the command that needs them, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from anymodal._version import __version__
from anymodal.errors import AnymodalError

__all__ = ["build_parser", "main"]


def _cmd_plugins(args: argparse.Namespace) -> int:
    from anymodal.plugins import get_plugin_manager

    manager = get_plugin_manager()
    rows = [
        {"plugin": p.name, "distribution": p.distribution, "version": p.version,
         "builtin": p.builtin, "modalities": p.modalities, "encoders": p.encoders,
         "objectives": p.objectives, "datasets": p.datasets}
        for p in manager.plugins.values()
    ]
    failures = [{"plugin": f.name, "distribution": f.distribution, "version": f.version,
                 "reason": f.reason} for f in manager.failures]
    if args.json:
        print(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"anymodal {__version__} plugins")
    kinds = ("modalities", "encoders", "objectives", "datasets")
    for column in ("plugin", "version", *kinds):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(f"{row['plugin']}\n[dim]{row['distribution']}[/dim]", row["version"],
                      *(", ".join(row[kind]) or "-" for kind in kinds))
    console = Console()
    console.print(table)
    if failures:
        failed = Table(title="plugins that failed to load", style="red")
        for column in ("plugin", "version", "reason"):
            failed.add_column(column, overflow="fold")
        for f in failures:
            failed.add_row(f"{f['plugin']}\n[dim]{f['distribution']}[/dim]", f["version"],
                           f["reason"])
        console.print(failed)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from anymodal.doctor import run_checks

    results = run_checks(args.only)
    if args.json:
        print(json.dumps([{**r.__dict__, "fails_strict": r.fails_strict} for r in results],
                         indent=2))
    else:
        width = max(len(r.name) for r in results)
        for r in results:
            line = f"{r.status:<7}  {r.name:<{width}}  {r.detail}"
            if r.status != "ok" and r.fix:
                line += f"  -- fix: {r.fix}"
            print(line)
    failed = [r for r in results if r.fails_strict]
    if args.strict and failed:
        print(f"anymodal doctor --strict: {len(failed)} check(s) failed: "
              f"{', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from anymodal.training import train_from_recipe

    result = train_from_recipe(args.recipe, args.overrides)
    return 130 if result.stopped else 0  # stopped by SIGINT/SIGTERM, checkpoint saved


def _cmd_datasets(args: argparse.Namespace) -> int:
    from anymodal.plugins import build_dataset_files, get_plugin_manager

    registry = get_plugin_manager().datasets
    if args.action == "list":
        for name, entry in registry.items():
            print(f"{name:16s} {entry.spec.description}  [{entry.plugin}]")
        return 0
    if not args.name or not args.out_dir:
        raise AnymodalError("anymodal datasets build needs NAME and OUT_DIR")
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
    manifest = build_dataset_files(args.name, args.out_dir, **params)
    print(f"manifest: {manifest}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.digits:
        from anymodal.digits_demo import run_digits_demo

        return run_digits_demo(output_dir=args.output_dir or "runs/demo_digits",
                               data_dir=args.data_dir, limit=args.limit, steps=args.steps)
    from anymodal.demo import run_demo

    return run_demo(output_dir=args.output_dir or "runs/demo", steps=args.steps,
                    quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anymodal",
        description="Contrastive learning across any number of modalities.",
    )
    parser.add_argument("--version", action="version", version=f"anymodal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("plugins", help="list plugins, what they provide, and failures")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("doctor", help="check that every dependency loads and works; say how to fix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a check fails (make install ends with this)")
    p.add_argument("--only", metavar="PATTERN", default=None,
                   help="run only the checks whose name matches this glob ('audio:*')")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("train", help="train from a YAML recipe (also under accelerate launch)",
                       description="Train from a recipe. Overrides are key=value pairs, e.g. "
                       "train.max_steps=100 data.batch_size=64.")
    p.add_argument("recipe", help="path to a YAML recipe (see recipes/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("datasets", help="list or build data sets that plugins provide",
                       description="anymodal datasets list | anymodal datasets build NAME "
                       "OUT_DIR [--limit N] [--modalities a,b] [--missing F] [key=value ...]")
    p.add_argument("action", choices=["list", "build"])
    p.add_argument("name", nargs="?", help="the data set (see: anymodal datasets list)")
    p.add_argument("out_dir", nargs="?", help="where its files and manifest are written")
    p.add_argument("params", nargs="*", help="key=value options of the builder")
    p.add_argument("--limit", type=int, default=None, help="build only the first N samples")
    p.add_argument("--modalities", default=None, help="comma-separated subset to build")
    p.add_argument("--missing", type=float, default=None,
                   help="fraction of rows built with some modalities dropped")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("demo", help="a small end-to-end run: train, embed, search, report")
    p.add_argument("--output-dir", default=None, help="where the run is written")
    p.add_argument("--steps", type=int, default=None, help="training steps per objective")
    p.add_argument("--quick", action="store_true", help="the fastest version (for tests)")
    p.add_argument("--digits", action="store_true",
                   help="the six-modality demo on handwritten digits (needs anymodal-datasets)")
    p.add_argument("--data-dir", default="data/digits", help="--digits: where the data goes")
    p.add_argument("--limit", type=int, default=None, help="--digits: build only N digits")
    p.set_defaults(func=_cmd_demo)

    from anymodal.retrieval.commands import add_retrieval_commands

    add_retrieval_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for a usage or anymodal error)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value items may follow options (`datasets build digits out --limit 5 seed=3`).
    target = "overrides" if hasattr(args, "overrides") else "params"
    if extra and hasattr(args, target) and all("=" in e and not e.startswith("-")
                                               for e in extra):
        getattr(args, target).extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result: Any = args.func(args)
    except AnymodalError as exc:
        print(f"anymodal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"anymodal {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
