"""Turning one row of sources (paths, bytes, strings) into a row of model-ready items."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anymodal.errors import DataError
from anymodal.types import ModalitySpec

from .collate import BadRow, Row

__all__ = ["ON_ERROR_CHOICES", "load_row", "resolve_source", "source_key"]

ON_ERROR_CHOICES = ("skip", "raise")


def source_key(value: Any) -> str:
    """The identity of a source value: rows with equal keys hold the same item (a caption
    repeated on many rows, a clip listed twice). ``anymodal eval`` identifies items the
    same way, so validation in training counts positives and duplicates as eval does."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def resolve_source(value: Any, base_dir: Path | None) -> Any:
    """A string that names an existing file relative to ``base_dir`` becomes that path;
    anything else (inline text, bytes, numbers, absolute paths) is passed on unchanged."""
    if isinstance(value, str) and base_dir is not None and value and not Path(value).is_absolute():
        candidate = base_dir / value
        try:
            if candidate.exists():
                return str(candidate)
        except OSError:  # a long inline caption can be an invalid file name
            return value
    return value


def load_row(index: int, row_id: str, sources: Mapping[str, Any], label: int | None,
             modalities: Mapping[str, ModalitySpec], train: bool, on_error: str,
             base_dir: Path | None = None) -> Row | BadRow:
    """``load`` + ``transform`` every modality of a row.

    A source that is ``None`` (or a key that is absent) is a missing modality. A
    :class:`DataError` fails the whole row: it is raised again naming the row when
    ``on_error="raise"``, or returned as a :class:`BadRow` when ``on_error="skip"``.
    """
    items: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for key, spec in modalities.items():
        value = sources.get(key)
        if value is None:
            continue
        keys[key] = source_key(value)
        source = resolve_source(value, base_dir)
        try:
            items[key] = spec.transform(spec.load(source), train)
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
