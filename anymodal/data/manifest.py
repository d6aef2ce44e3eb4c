"""Manifest datasets: JSONL or CSV rows of sources, paths relative to the manifest.

A row such as ``{"id": "x1", "audio": "clips/x1.wav", "text": "a dog barks", "label": 3}``
gives one training tuple; a missing key or a null is a missing modality.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from anymodal.errors import DataError
from anymodal.types import ModalitySpec

from .collate import BadRow, Row
from .rows import load_row

__all__ = ["ManifestDataset", "read_manifest_rows"]


def read_manifest_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` (one object per line) or ``.csv`` (header row) manifest.

    Empty CSV cells are missing values. Raises :class:`DataError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest not found")
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}", f"not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{number}", "expected a JSON object per line")
                rows.append(row)
    elif path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({k: (v if v != "" else None) for k, v in row.items()})
    else:
        raise DataError(path, "unknown manifest format; expected .jsonl or .csv")
    if not rows:
        raise DataError(path, "manifest has no rows")
    return rows


class ManifestDataset(Dataset[Row | BadRow]):
    """A map-style dataset over a manifest.

    Args:
        path: the manifest (``.jsonl`` or ``.csv``).
        modalities: modality key -> bound spec; other columns are ignored.
        train: apply training augmentation.
        on_error: ``skip`` (bad rows come back as :class:`BadRow`) or ``raise``.
        label_key: column of integer class labels, if any.
    """

    def __init__(self, path: str | Path, modalities: Mapping[str, ModalitySpec],
                 train: bool = True, on_error: str = "skip", label_key: str = "label") -> None:
        self.path = Path(path)
        self.base_dir = self.path.parent
        self.modalities = dict(modalities)
        self.train = train
        self.on_error = on_error
        self.label_key = label_key
        self.rows = read_manifest_rows(self.path)
        columns = set().union(*(row.keys() for row in self.rows))
        if not columns & set(self.modalities):
            raise DataError(self.path, f"no column matches the recipe's modalities "
                            f"{sorted(self.modalities)}; columns are {sorted(columns)}")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Row | BadRow:
        row = self.rows[index]
        row_id = str(row.get("id", index))
        label = row.get(self.label_key)
        try:
            label = None if label is None else int(label)
        except (TypeError, ValueError):
            raise DataError(f"{self.path} row {index}",
                            f"label {label!r} is not an integer") from None
        return load_row(index, row_id, row, label, self.modalities, self.train,
                        self.on_error, self.base_dir)
