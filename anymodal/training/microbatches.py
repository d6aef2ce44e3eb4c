"""Cutting a collated batch into micro-batches of rows (used by GradCache).

A modality's collated value holds only the rows where it is present, in row order, so the
rows ``a:b`` of a batch are, for each modality, the items between the number of present
rows before ``a`` and before ``b``. Tensors, lists and tuples are cut along their first
dimension, mappings field by field, PyTorch Geometric batches graph by graph; any other
value, or a field that is not one entry per row, is a :class:`anymodal.DataError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from anymodal.errors import ConfigError, DataError
from anymodal.types import PRESENT_KEY, Batch

__all__ = ["presence_masks", "split_batch"]


def _rows_of(value: Any) -> int | None:
    """The number of rows of a collated value, when its type tells (tensor, list, dict)."""
    if torch.is_tensor(value):
        return int(value.shape[0]) if value.dim() else None
    if isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(value, Mapping):
        for item in value.values():
            rows = _rows_of(item)
            if rows is not None:
                return rows
        return None
    num_graphs = getattr(value, "num_graphs", None)
    return int(num_graphs) if num_graphs is not None else None


def _slice_value(value: Any, start: int, stop: int, rows: int, where: str) -> Any:
    """Rows ``start:stop`` of a collated value that holds ``rows`` rows.

    Tensors, lists and tuples are cut along their first dimension; mappings field by field;
    PyTorch Geometric batches through ``index_select`` and ``from_data_list``.

    Raises:
        DataError: a field that is not one entry per row (named by ``where``).
    """
    if torch.is_tensor(value) or isinstance(value, (list, tuple)):
        length = _rows_of(value)
        if length != rows:
            shape = list(value.shape) if torch.is_tensor(value) else f"length {len(value)}"
            raise DataError(where, f"has {shape} but the batch has {rows} rows of this "
                            "modality; train.micro_batch cuts every field of a collated "
                            "batch along its first dimension (one entry per row)")
        return value[start:stop]
    if isinstance(value, Mapping):
        return {key: _slice_value(item, start, stop, rows, f"{where}.{key}")
                for key, item in value.items()}
    if hasattr(value, "index_select") and hasattr(type(value), "from_data_list"):
        return type(value).from_data_list(value.index_select(slice(start, stop)))
    raise DataError(where, f"is a {type(value).__name__}, which train.micro_batch cannot cut "
                    "into rows (supported: tensors, lists, tuples, dicts of those, PyG batches)")


def presence_masks(batch: Batch, keys: Sequence[str]) -> tuple[int, dict[str, Tensor]]:
    """The batch's row count and a presence mask (CPU) for each of its modalities.

    Args:
        batch: a collated batch.
        keys: the modality keys to look for; a key in ``batch`` without a mask is present
            in every row.

    Raises:
        DataError: a modality with neither a mask nor a row count, or modalities that
            disagree on the number of rows.
    """
    given: Mapping[str, Tensor] = batch.get(PRESENT_KEY, {})
    masks: dict[str, Tensor] = {}
    for key in keys:
        if key in given:
            masks[key] = torch.as_tensor(given[key]).bool().cpu()
        elif key in batch:
            rows = _rows_of(batch[key])
            if rows is None:
                raise DataError(f"batch[{key!r}]", "has no row count and no presence mask")
            masks[key] = torch.ones(rows, dtype=torch.bool)
    sizes = {key: int(mask.numel()) for key, mask in masks.items()}
    if not sizes or len(set(sizes.values())) != 1:
        raise DataError("batch", f"modalities disagree on the number of rows: {sizes}")
    return next(iter(sizes.values())), masks


def split_batch(batch: Batch, keys: Sequence[str], micro_batch: int) -> list[Batch]:
    """Cut a collated batch into micro-batches of ``micro_batch`` rows, in row order.

    A modality's collated value holds only its present rows, so a micro-batch of rows
    ``a:b`` takes the present rows that fall in ``a:b``; a micro-batch without any row of a
    modality keeps its (all False) presence mask and no value, as collate would make it.

    Args:
        batch: ``{key: collated, "present": {key: BoolTensor[B]}, ...}``.
        keys: the model's modality keys (other entries of ``batch`` are left out).
        micro_batch: rows per micro-batch (the last one may be shorter).

    Returns:
        micro-batches with the modality values and ``present`` only.
    """
    if micro_batch < 1:
        raise ConfigError(f"train.micro_batch must be at least 1, got {micro_batch}")
    rows, masks = presence_masks(batch, keys)
    if rows == 0:
        raise DataError("batch", "has no rows to embed")
    # Position of row r's item in the collated value = number of present rows before r.
    before = {key: torch.cat([torch.zeros(1, dtype=torch.long), mask.long().cumsum(0)])
              for key, mask in masks.items()}
    pieces: list[Batch] = []
    for start in range(0, rows, micro_batch):
        stop = min(start + micro_batch, rows)
        piece: Batch = {PRESENT_KEY: {}}
        for key, mask in masks.items():
            piece[PRESENT_KEY][key] = mask[start:stop]
            first, last = int(before[key][start]), int(before[key][stop])
            if last > first:
                piece[key] = _slice_value(batch[key], first, last, int(before[key][-1]),
                                          f"batch[{key!r}]")
        pieces.append(piece)
    return pieces
