"""Where the items of ``embed`` and ``index`` come from: a manifest column, or argv."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from anymodal.errors import ConfigError, DataError

__all__ = ["add_item_arguments", "load_model", "read_items", "report_failures"]

logger = logging.getLogger("anymodal.cli")

# Bad items are listed one by one up to this many, then counted.
MAX_LISTED = 20


def add_item_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments that say where the items come from and how they are embedded."""
    p.add_argument("items", nargs="*",
                   help="items (paths or inline values), if no --data; right after MODEL")
    p.add_argument("--data", help="a manifest (.jsonl/.csv); items are its --column")
    p.add_argument("--column", help="the manifest column of the items (default: --modality)")
    p.add_argument("--id-column", default="id",
                   help="manifest column of ids (default 'id'; else the row number)")
    p.add_argument("--payload-columns", default="",
                   help="comma-separated manifest columns kept as each row's payload")
    p.add_argument("--batch-size", type=int, default=64, help="items embedded at once")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="a bad item stops (raise) or is left out and reported (skip)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_model(path: str) -> Any:
    """The model saved in folder ``path`` (imports torch)."""
    from anymodal.model import load_model as load

    return load(path)


def read_items(args: argparse.Namespace, modality: str
               ) -> tuple[list[Any], list[str] | None, list[Any] | None]:
    """``(items, ids, payloads)`` from ``--data`` (a manifest column) or the command line.

    Args:
        args: the parsed command line (see :func:`add_item_arguments`).
        modality: the model's modality key, the default column.
    """
    if not args.data:
        if not args.items:
            raise ConfigError("give the items on the command line, or --data MANIFEST")
        return list(args.items), None, None
    from anymodal.data.manifest import read_manifest_rows
    from anymodal.data.rows import resolve_source

    column = args.column or modality
    extra = [c.strip() for c in args.payload_columns.split(",") if c.strip()]
    base = Path(args.data).parent
    items, ids, payloads = [], [], []
    for number, row in enumerate(read_manifest_rows(args.data)):
        value = row.get(column)
        if value is None:
            continue
        items.append(resolve_source(value, base))
        ids.append(str(row.get(args.id_column, number)))
        payloads.append({"source": value, **{c: row.get(c) for c in extra}} if extra
                        else value)
    if not items:
        raise DataError(args.data, f"no row has a value in column {column!r}")
    return items, ids, payloads


def report_failures(failures: list[tuple[int, str]]) -> None:
    """Log the items that were skipped (``--on-error skip``), the first few by name."""
    for index, reason in failures[:MAX_LISTED]:
        logger.warning("skipped item %d: %s", index, reason)
    if len(failures) > MAX_LISTED:
        logger.warning("... and %d more skipped items", len(failures) - MAX_LISTED)
