"""Reading multichannel time series: CSV and ``.npy`` files or their bytes, arrays, tensors.

Every problem with the input becomes an :class:`anymodal.DataError` that names the file
(and, for CSV, the line and column), never a bare numpy traceback or a silent NaN.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymodal import DataError
from anymodal_timeseries.config import TimeseriesConfig

__all__ = ["load_series", "parse_csv", "read_csv", "read_npy", "write_csv"]

SUFFIXES = (".csv", ".npy")
NPY_MAGIC = b"\x93NUMPY"


def load_series(source: Any, config: TimeseriesConfig) -> torch.Tensor:
    """Read one series as a float32 ``[T, C]`` tensor (rows are time, columns channels).

    Args:
        source: a path (``str`` or ``Path``) to a ``.csv`` or ``.npy`` file; the bytes of
            such a file (a ``.npy`` is recognised by its magic number, anything else is
            read as UTF-8 CSV text: how web-dataset shards hand items over); or an
            in-memory ``[T, C]`` (or, when ``channels == 1``, ``[T]``) array or tensor.
        config: the modality's options (``channels`` is checked).

    Shapes:
        output: ``[T, channels]`` with ``T >= 1``, every value finite.

    Raises:
        DataError: missing or unreadable file, unknown suffix, ragged or non-numeric CSV,
            empty series, NaN/infinite values, or a channel count other than ``channels``.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise DataError(path, "file not found (expected a .csv or .npy time series)")
        if not path.is_file():
            raise DataError(path, "is not a file (expected a .csv or .npy time series)")
        if path.suffix.lower() == ".csv":
            array = read_csv(path)
        elif path.suffix.lower() == ".npy":
            array = read_npy(path)
        else:
            raise DataError(path, f"unsupported file type {path.suffix!r}; expected {SUFFIXES}")
        name: object = path
    elif isinstance(source, (bytes, bytearray)):
        name = f"<{len(source)} bytes>"
        if bytes(source[:6]) == NPY_MAGIC:
            array = _load_npy(io.BytesIO(source), name)
        else:
            try:
                text = bytes(source).decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(name, "neither .npy data nor UTF-8 CSV text") from None
            array = parse_csv(text.splitlines(), name)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        name = f"<{type(source).__name__} of shape {tuple(source.shape)}>"
        array = _as_float_array(np.asarray(source.detach().cpu() if torch.is_tensor(source)
                                           else source), name)
    else:
        raise DataError(repr(source)[:80], "expected a path to a .csv/.npy file, or an array")
    return _validate(array, name, config)


def read_csv(path: Path) -> np.ndarray:
    """Parse a CSV file into a float64 ``[T, C]`` array (see :func:`parse_csv`)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return parse_csv(handle, path)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot be read as a CSV text file ({exc})") from None


def parse_csv(lines: Iterable[str], name: object) -> np.ndarray:
    """Parse CSV lines into a float64 ``[T, C]`` array; ``name`` is used in errors.

    The first row is a header when none of its cells is a number; otherwise it is data.
    Blank lines are skipped. A row whose length differs from the first data row (ragged)
    and a cell that is not a number are errors naming the line (and column).
    """
    try:
        rows = [(n, row) for n, row in enumerate(csv.reader(lines), start=1)
                if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise DataError(name, f"is not valid CSV ({exc})") from None
    if rows and not any(_is_number(cell) for cell in rows[0][1]):
        rows = rows[1:]  # a header: channel names
    if not rows:
        raise DataError(name, "is empty: no data rows (expected one row per time step)")
    width = len(rows[0][1])
    values = np.empty((len(rows), width), dtype=np.float64)
    for t, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataError(name, f"line {line} has {len(row)} columns, the first data row "
                                  f"has {width} (ragged rows)")
        for c, cell in enumerate(row):
            try:
                values[t, c] = float(cell)
            except ValueError:
                raise DataError(name, f"line {line}, column {c + 1}: {cell.strip()!r} is not "
                                      "a number") from None
    return values


def read_npy(path: Path) -> np.ndarray:
    """Load a ``.npy`` file (no pickles) as a float array."""
    return _load_npy(path, path)


def _load_npy(file: Path | io.BytesIO, name: object) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError or EOFError on bad files
        raise DataError(name, f"not a readable .npy array ({type(exc).__name__}: {exc})") from None
    return _as_float_array(array, name)


def _as_float_array(array: np.ndarray, name: object) -> np.ndarray:
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(name, f"holds {array.dtype} values, expected numbers")
    if np.iscomplexobj(array):
        raise DataError(name, "holds complex values, expected real numbers")
    return array.astype(np.float64, copy=False)


def _validate(array: np.ndarray, name: object, config: TimeseriesConfig) -> torch.Tensor:
    if array.ndim == 1 and config.channels == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(name, f"has shape {array.shape}, expected [time, channels]")
    if array.shape[0] == 0:
        raise DataError(name, "is empty: 0 time steps")
    if array.shape[1] != config.channels:
        raise DataError(name, f"has {array.shape[1]} channels, expected channels="
                              f"{config.channels}")
    bad = ~np.isfinite(array)
    if bad.any():
        t, c = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(name, f"{int(bad.sum())} NaN or infinite value(s), the first at time "
                              f"step {t}, channel {c}")
    return torch.from_numpy(array.astype(np.float32))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def write_csv(path: Path, series: np.ndarray, header: Sequence[str] | None = None) -> None:
    """Write a ``[T, C]`` array as CSV (with an optional header): the format ``load`` reads."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        writer.writerows(np.asarray(series).tolist())
