"""Turning one row of sources (paths, bytes, strings) into a row of model-ready items."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from anymodal.errors import DataError
from anymodal.types import ModalitySpec

from . import sources
from .collate import BadRow, Row
from .guard import DEFAULT_LOAD_TIMEOUT, guarded_item

__all__ = ["ON_ERROR_CHOICES", "load_row", "resolve_source", "source_key"]

ON_ERROR_CHOICES = ("skip", "raise")


def source_key(value: Any) -> str:
    """The identity of a source value: rows with equal keys hold the same item.

    A caption repeated on many rows, or a clip listed twice, is one item. ``anymodal eval``
    identifies items the same way, so validation in training counts positives and
    duplicates as eval does.

    Args:
        value: a manifest cell (a path, inline text, or a JSON value).
    """
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def resolve_source(value: Any, base_dir: Path | None, root: Path | None = None,
                   is_path: Callable[[str], bool] | None = None) -> Any:
    """Resolve a manifest string that names a file, confined to ``root``.

    See :func:`anymodal.data.sources.resolve_source`; content is passed on unchanged.
    """
    return sources.resolve_source(value, base_dir, root, is_path)


def load_row(index: int, row_id: str, values: Mapping[str, Any], label: int | None,
             modalities: Mapping[str, ModalitySpec], train: bool, on_error: str,
             base_dir: Path | None = None, root: Path | None = None,
             timeout: float = DEFAULT_LOAD_TIMEOUT) -> Row | BadRow:
    """``load`` + ``transform`` every modality of a row.

    A source that is ``None`` (or a key that is absent) is a missing modality. A
    :class:`DataError` fails the whole row: it is raised again naming the row when
    ``on_error="raise"``, or returned as a :class:`BadRow` when ``on_error="skip"``.
    """
    items: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for key, spec in modalities.items():
        value = values.get(key)
        if value is None:
            continue
        keys[key] = source_key(value)
        try:
            source = resolve_source(value, base_dir, root, sources.path_rule(spec.load))
            items[key] = guarded_item(spec, source, train, timeout, source)
        except DataError as exc:
            if on_error == "raise":
                raise DataError(exc.source, f"{exc.problem} (row {index}, id {row_id!r}, "
                                f"modality {key!r})") from None
            return BadRow(index, row_id, str(exc.source), f"{key}: {exc.problem}")
    if not items:
        problem = f"has none of the modalities {sorted(modalities)}"
        if on_error == "raise":
            raise DataError(f"row {index} (id {row_id!r})", problem)
        return BadRow(index, row_id, "", problem)
    return {"id": row_id, "label": label, "items": items, "keys": keys}
