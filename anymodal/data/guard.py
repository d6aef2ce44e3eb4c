"""Rows under guard: a time limit, file errors, non-finite values, non-finite embeddings.

Loading an item: each failure becomes a :class:`DataError` (a counted bad row), never a
hang, a crash or a silent NaN.

Embedding a batch: a finite input can still overflow an encoder (a vector of 3e38 gives an
infinite, then NaN, embedding). :func:`embed_finite` embeds the batch again without such
rows, so the loss stays finite, and reports them (:data:`NONFINITE_KEY`); the training loop
names them as bad rows (:func:`nonfinite_bad_rows`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from anymodal.data.collate import BAD_KEY, ROWS_KEY, BadRow, key_code
from anymodal.errors import DataError
from anymodal.types import IDS_KEY, PRESENT_KEY, Batch, ModalitySpec

__all__ = ["DEFAULT_LOAD_TIMEOUT", "NONFINITE_KEY", "check_finite", "embed_finite",
           "finite_rows", "guarded_item", "nonfinite_bad_rows", "nonfinite_rows",
           "running_stats", "take_rows", "time_limit"]

# Seconds one item may take to load and transform before its row is bad (0: no limit).
DEFAULT_LOAD_TIMEOUT = 60.0


class _Expired(Exception):
    """Raised by the alarm inside a load that ran past its time limit."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Expired


@contextlib.contextmanager
def time_limit(seconds: float, source: object) -> Iterator[None]:
    """Raise a :class:`DataError` naming ``source`` when the block runs past ``seconds``.

    It uses ``SIGALRM``, so it applies in the main thread of a process (a DataLoader
    worker runs items there); elsewhere, with ``seconds <= 0``, or while another real-time
    timer is armed (left alone), the block runs unlimited.
    A blocking system call (``open`` of a FIFO) is interrupted too.

    Args:
        seconds: the limit.
        source: what is named in the error.
    """
    usable = (seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)  # never clobber a timer
    if not usable:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise DataError(source, f"did not load within {seconds:g} s (a hung read: a FIFO, "
                        "a stalled network file system?); data.load_timeout sets the "
                        "limit") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _non_finite(value: Any) -> bool:
    """Whether a transformed item holds a NaN or infinite float anywhere."""
    if torch.is_tensor(value):
        return bool(value.is_floating_point() and not torch.isfinite(value).all())
    if isinstance(value, np.ndarray):
        return bool(value.dtype.kind == "f" and not np.isfinite(value).all())
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def check_finite(item: Any, source: object) -> Any:
    """Return ``item``, or raise a :class:`DataError` when it holds NaN or infinity.

    Args:
        item: a transformed item (tensor, array, or a mapping/sequence of them).
        source: what is named in the error.
    """
    if _non_finite(item):
        raise DataError(source, "has NaN or infinite values after its transform (e.g. "
                        "samples or features too large for float32)")
    return item


def guarded_item(spec: ModalitySpec, source: Any, train: bool, timeout: float,
                 name: object) -> Any:
    """``transform(load(source))`` under a time limit, with every failure a DataError.

    Args:
        spec: the bound modality.
        source: the (resolved) source.
        train: apply training augmentation.
        timeout: seconds allowed (``<= 0``: no limit).
        name: how the item is named in errors.
    """
    with time_limit(timeout, name):
        try:
            item = spec.transform(spec.load(source), train)
        except OSError as exc:  # a name too long, a permission, an I/O error
            raise DataError(name, f"cannot be read ({exc.strerror or exc})") from None
    return check_finite(item, name)


# -- rows whose embeddings are not finite -------------------------------------------------------

# The objective's output carries, under this key, which rows' embeddings were not finite
# (``BoolTensor[B, M]``, the model's modalities in order), only when some were.
NONFINITE_KEY = "nonfinite_rows"

# BatchNorm-like modules of each model, found once (a model does not change its layers
# while it trains).
_NORMS: weakref.WeakKeyDictionary[nn.Module, list[nn.Module]] = weakref.WeakKeyDictionary()


def running_stats(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """A copy of every buffer of the model's training-mode BatchNorm-like modules.

    A row that overflows poisons their running statistics (the batch mean becomes NaN):
    :func:`finite_rows` puts them back before the batch is embedded again without it.
    Empty (and nearly free) for models without such modules.

    Args:
        model: the model about to embed a batch.

    Returns:
        ``(buffer, copy)`` pairs.
    """
    if model not in _NORMS:
        _NORMS[model] = [m for m in model.modules()
                         if isinstance(m, nn.modules.batchnorm._NormBase)
                         and m.track_running_stats]
    return [(b, b.detach().clone()) for m in _NORMS[model] if m.training
            for b in m.buffers(recurse=False)]


def nonfinite_rows(embeddings: Mapping[str, Tensor], keys: Sequence[str]) -> Tensor | None:
    """Which rows' embeddings hold NaN or infinity, modality by modality.

    One host synchronisation; nothing else when every embedding is finite.

    Args:
        embeddings: modality key -> the batch's embeddings (every row).
        keys: the model's modality keys, in order (the columns of the result).

    Returns:
        ``None`` when all are finite, else a CPU ``BoolTensor``.

    Shapes:
        ``embeddings[k]``: ``[B, D]``; returns ``[B, len(keys)]``.
    """
    if not embeddings:
        return None
    first = next(iter(embeddings.values()))
    columns = [~torch.isfinite(embeddings[k]).all(dim=-1) if k in embeddings
               else torch.zeros(first.shape[0], dtype=torch.bool, device=first.device)
               for k in keys]
    flags = torch.stack(columns, dim=1)
    return flags.cpu() if bool(flags.any()) else None


def _take(value: Any, index: list[int], rows: int, where: str) -> Any:
    """The entries ``index`` of a collated value holding ``rows`` entries.

    Raises:
        DataError: the value (named by ``where``) is not one entry per row.
    """
    if torch.is_tensor(value) and value.dim() and value.shape[0] == rows:
        return value[torch.as_tensor(index, dtype=torch.long, device=value.device)]
    if isinstance(value, list | tuple) and len(value) == rows:
        return type(value)(value[i] for i in index)
    if isinstance(value, Mapping):
        return {k: _take(v, index, rows, f"{where}.{k}") for k, v in value.items()}
    if hasattr(value, "index_select") and hasattr(type(value), "from_data_list"):
        return type(value).from_data_list(value.index_select(index))  # a PyG batch
    raise DataError(where, f"is not one entry per row ({rows} rows): its rows cannot be taken")


def take_rows(batch: Batch, keep: Tensor, keys: Sequence[str]) -> Batch:
    """The batch of the rows where ``keep`` is true, as collate would have made it.

    A modality's value holds its present rows only; every other per-row entry (ids,
    labels, item keys, presence masks) has one entry per row; the bad rows stay as they are.

    Args:
        batch: a collated batch.
        keep: which rows to keep.
        keys: the model's modality keys.

    Raises:
        DataError: an entry that is not one entry per row, named.

    Shapes:
        ``keep``: ``[B]``.
    """
    keep, keys = keep.bool().cpu(), list(keys)
    rows, index = int(keep.numel()), keep.nonzero().squeeze(1).tolist()
    masks = {k: torch.as_tensor(m).bool().cpu() for k, m in batch.get(PRESENT_KEY, {}).items()}
    out: Batch = {}
    for name, value in batch.items():
        if name == BAD_KEY:
            out[name] = value
        elif name in keys:
            mask = masks.get(name, torch.ones(rows, dtype=torch.bool))
            present = int(mask.sum())
            # Row r's item sits at the number of present rows before r.
            position = (mask.long().cumsum(0) - 1)[keep & mask].tolist()
            out[name] = _take(value, position, present, f"batch[{name!r}]")
        else:
            out[name] = _take(value, index, rows, f"batch[{name!r}]")
    return out


def finite_rows(batch: Batch, flags: Tensor, keys: Iterable[str],
                saved: Sequence[tuple[Tensor, Tensor]]) -> Batch | None:
    """The batch without the flagged rows, to embed again; ``None`` to keep the batch whole.

    Rows are dropped only when at least two finite rows remain (a contrastive loss needs
    two): when (nearly) every row overflows, the model itself has diverged (or a
    BatchNorm spread one row's overflow over the batch), and the non-finite loss tells.
    Either way the running statistics ``saved`` before the first pass are put back.

    Args:
        batch: the collated batch.
        flags: :func:`nonfinite_rows` of its embeddings.
        keys: the model's modality keys, in order.
        saved: :func:`running_stats` taken before the first pass.

    Shapes:
        ``flags``: ``[B, len(keys)]``.
    """
    with torch.no_grad():
        for buffer, copy in saved:
            buffer.copy_(copy)
    keep = ~flags.any(dim=1)
    if int(keep.sum()) < 2:
        return None
    try:
        return take_rows(batch, keep, list(keys))
    except DataError:  # a collated value that cannot be cut: the step is skipped instead
        return None


def embed_finite(embed: Callable[[Batch], dict[str, Tensor]], batch: Batch,
                 model: nn.Module, keys: Sequence[str]
                 ) -> tuple[Batch, dict[str, Tensor], Tensor | None]:
    """Embed ``batch``; when some rows' embeddings are not finite, embed it again without them.

    See :func:`finite_rows` for when rows are dropped.

    Args:
        embed: embeds a collated batch (``MultiModalModel.embed_batch``).
        batch: the collated batch.
        model: the module whose BatchNorm statistics the first pass may spoil.
        keys: the model's modality keys, in order.

    Returns:
        ``(batch, its embeddings, flags)``: the batch actually embedded, and
        :func:`nonfinite_rows` of the first pass (``None`` when all were finite).
    """
    saved = running_stats(model)
    embeddings = embed(batch)
    flags = nonfinite_rows(embeddings, keys)
    kept = None if flags is None else finite_rows(batch, flags, keys, saved)
    if kept is None:
        return batch, embeddings, flags
    del embeddings  # the first pass's graph goes with it
    return kept, embed(kept), flags


def _max_abs(value: Any) -> float | None:
    """The largest |x| of the floating-point tensors in one row's item."""
    if torch.is_tensor(value):
        if value.is_floating_point() and value.numel():
            return float(value.detach().abs().max())
        return None
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        found = [m for m in (_max_abs(v) for v in value) if m is not None]
        return max(found) if found else None
    return None


def _row_item(batch: Batch, key: str, row: int) -> Any:
    """Row ``row``'s item of modality ``key`` (tensors and mappings of tensors)."""
    mask = batch.get(PRESENT_KEY, {}).get(key)
    position = row if mask is None else int(torch.as_tensor(mask)[:row].sum())
    value = batch.get(key)
    if isinstance(value, Mapping):
        return {k: _row_item({key: v}, key, position) for k, v in value.items()}
    if torch.is_tensor(value) and value.dim() and position < value.shape[0]:
        return value[position]
    if isinstance(value, list | tuple) and position < len(value):
        return value[position]
    return None


def nonfinite_bad_rows(batch: Batch, flags: Tensor, keys: Sequence[str]) -> list[BadRow]:
    """Name the rows whose embeddings were not finite: id, modality and the input's max |x|.

    A row is recorded under its training-set index (``batch["rows"]``), or, in a batch
    without one, under ``-1 - key_code(id)``, which still tells it apart from other rows
    across epochs and resumes.

    Args:
        batch: the collated batch the flags were computed on.
        flags: :func:`nonfinite_rows` of it.
        keys: the model's modality keys, in order.

    Shapes:
        ``flags``: ``[B, len(keys)]``.
    """
    ids, indices, bad = batch.get(IDS_KEY, []), batch.get(ROWS_KEY), []
    for row in flags.any(dim=1).nonzero().squeeze(1).tolist():
        row_id = str(ids[row]) if row < len(ids) else str(row)
        index = int(indices[row]) if indices is not None else -1 - key_code(row_id)
        parts = []
        for column in flags[row].nonzero().squeeze(1).tolist():
            size = _max_abs(_row_item(batch, keys[column], row))
            parts.append(f"{keys[column]} (input max |x| = "
                         f"{'unknown' if size is None else f'{size:.3g}'})")
        bad.append(BadRow(index, row_id, "embedding",
                          f"embedding of {', '.join(parts)} is NaN or infinite although the "
                          "input was finite: the encoder overflows in float32; rescale or "
                          "remove this item"))
    return bad
