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
from .guard import DEFAULT_LOAD_TIMEOUT
from .labels import parse_label
from .rows import load_row

__all__ = ["BAD_LINE", "ManifestDataset", "read_manifest_rows"]

# The key of the placeholder row that keeps a bad manifest line's place (see
# read_manifest_rows): its value is the reason. No manifest column can be named so.
BAD_LINE = "\0bad_line"


def read_manifest_rows(path: str | Path, bad_lines: list[tuple[int, str]] | None = None
                       ) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` (one object per line) or ``.csv`` (header row) manifest.

    Empty CSV cells are missing values. A line that is not UTF-8 or not a JSON object
    raises a :class:`DataError` naming the file and line, unless ``bad_lines`` is given:
    then the line keeps its place as a row holding only :data:`BAD_LINE` (its reason), and
    ``(line number, reason)`` is appended to ``bad_lines``.

    Args:
        path: the manifest file.
        bad_lines: receives the bad lines instead of an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = _jsonl_rows(path, bad_lines)
    elif suffix == ".csv":
        rows = _csv_rows(path, bad_lines)
    else:
        raise DataError(path, "unknown manifest format; expected .jsonl or .csv")
    if not rows:
        raise DataError(path, "manifest has no rows")
    return rows


def _bad_line(rows: list[dict[str, Any]], bad_lines: list[tuple[int, str]] | None,
              where: str, number: int, reason: str) -> None:
    if bad_lines is None:
        raise DataError(where, reason)
    bad_lines.append((number, reason))
    rows.append({BAD_LINE: f"{where}: {reason}"})


def _jsonl_rows(path: Path, bad_lines: list[tuple[int, str]] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                _bad_line(rows, bad_lines, where, number, f"not valid UTF-8 (byte "
                          f"0x{raw[exc.start]:02x} at column {exc.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                _bad_line(rows, bad_lines, where, number, f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                _bad_line(rows, bad_lines, where, number, "expected a JSON object per line")
                continue
            rows.append(row)
    return rows


def _csv_rows(path: Path, bad_lines: list[tuple[int, str]] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # surrogateescape keeps undecodable bytes visible as lone surrogates, row by row.
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            values = {k: (v if v != "" else None) for k, v in row.items()}
            text = "".join(str(v) for v in (*values.keys(), *values.values()) if v)
            if any("\udc80" <= ch <= "\udcff" for ch in text):
                _bad_line(rows, bad_lines, f"{path}:{reader.line_num}", reader.line_num,
                          "not valid UTF-8")
                continue
            rows.append(values)
    return rows


class ManifestDataset(Dataset[Row | BadRow]):
    """A map-style dataset over a manifest.

    Args:
        path: the manifest (``.jsonl`` or ``.csv``).
        modalities: modality key -> bound spec; other columns are ignored.
        train: apply training augmentation.
        on_error: ``skip`` (bad rows come back as :class:`BadRow`) or ``raise``.
        label_key: column of integer class labels, if any.
        root: the folder manifest paths may reach (default: the manifest's folder).
        load_timeout: seconds one item may take to load (``0``: no limit).
    """

    def __init__(self, path: str | Path, modalities: Mapping[str, ModalitySpec],
                 train: bool = True, on_error: str = "skip", label_key: str = "label",
                 root: str | Path | None = None, load_timeout: float = DEFAULT_LOAD_TIMEOUT
                 ) -> None:
        self.path = Path(path)
        self.base_dir = self.path.parent
        self.root = Path(root) if root is not None else None
        self.modalities = dict(modalities)
        self.train = train
        self.on_error = on_error
        self.label_key = label_key
        self.load_timeout = float(load_timeout)
        self.bad_lines: list[tuple[int, str]] = []
        self.rows = read_manifest_rows(self.path, self.bad_lines if on_error == "skip" else None)
        columns = set().union(*(row.keys() for row in self.rows)) - {BAD_LINE}
        if not columns & set(self.modalities):
            raise DataError(self.path, f"no column matches the recipe's modalities "
                            f"{sorted(self.modalities)}; columns are {sorted(columns)}")

    def __len__(self) -> int:
        """The number of rows, bad lines included (each is a counted bad row)."""
        return len(self.rows)

    def __getitem__(self, index: int) -> Row | BadRow:
        """Load and transform row ``index``; a bad row is a :class:`BadRow` under ``skip``."""
        row = self.rows[index]
        if BAD_LINE in row:
            return BadRow(index, str(index), str(self.path), str(row[BAD_LINE]))
        row_id = str(row.get("id", index))
        try:
            label = parse_label(row.get(self.label_key), f"{self.path} row {index}")
        except DataError as exc:
            if self.on_error == "raise":
                raise
            return BadRow(index, row_id, str(self.path), exc.problem)
        return load_row(index, row_id, row, label, self.modalities, self.train,
                        self.on_error, self.base_dir, self.root, self.load_timeout)
