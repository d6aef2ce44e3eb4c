"""The one embedding path: raw items (paths, bytes, strings, tensors) through a trained model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import send_to_device

from anymodal.errors import DataError
from anymodal.utils.progress import progress_bar

if TYPE_CHECKING:
    from anymodal.model.core import MultiModalModel

__all__ = ["embed_items", "prepare_item"]


def prepare_item(model: MultiModalModel, key: str, item: Any) -> Any:
    """``load`` then ``transform(train=False)`` with modality ``key``'s plugin."""
    spec = model.modalities[key]
    return spec.transform(spec.load(item), False)


@torch.no_grad()
def embed_items(model: MultiModalModel, key: str, items: Iterable[Any], batch_size: int = 64,
                progress: bool = True, on_error: str = "raise",
                failures: list[tuple[int, str]] | None = None) -> torch.Tensor:
    """Embed ``items`` of modality ``key`` in batches, in eval mode, on the model's device.

    Args:
        model: the trained model.
        key: the modality key of the items.
        items: raw items (paths, bytes, strings, tensors).
        batch_size: items embedded at once.
        progress: show a progress bar.
        on_error: ``raise`` (a :class:`DataError` naming the item's index) or ``skip``
            (the item is left out and ``(index, reason)`` appended to ``failures``). An
            item whose embedding is not finite is a bad item too.
        failures: receives ``(index, reason)`` of skipped items.

    Shapes:
        output ``[n_ok, embed_dim]``.
    """
    if key not in model.modalities:
        raise KeyError(f"the model has no modality {key!r}; it has {sorted(model.modalities)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    was_training = model.training
    model.eval()
    items = list(items)
    chunks: list[torch.Tensor] = []
    bar = progress_bar(len(items), desc=f"embed {key}", disable=not progress, unit="item")
    try:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            chunk = _embed_chunk(model, key, batch, start, on_error, failures)
            if chunk is not None:
                chunks.append(chunk)
            bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    if not chunks:
        return torch.empty(0, model.embed_dim)
    return torch.cat(chunks)


def _embed_chunk(model: MultiModalModel, key: str, batch: list[Any], start: int,
                 on_error: str, failures: list[tuple[int, str]] | None) -> torch.Tensor | None:
    """Embed one batch of raw items; bad items raise or are reported in ``failures``.

    A bad item (a load error, or an embedding that is not finite) is named by its position
    ``start + offset``.

    Shapes:
        output ``[n_ok, embed_dim]`` on the CPU, or None when no item was good.
    """
    prepared, positions = [], []
    for offset, item in enumerate(batch):
        try:
            prepared.append(prepare_item(model, key, item))
            positions.append(start + offset)
        except DataError as exc:
            _bad(start + offset, DataError(f"item {start + offset} ({exc.source})", exc.problem),
                 on_error, failures)
    if not prepared:
        return None
    collated = send_to_device(model.modalities[key].collate(prepared), model.device)
    embedded = model.encode(key, collated).float().cpu()
    finite = torch.isfinite(embedded).all(dim=1)
    for row in (~finite).nonzero().flatten().tolist():
        _bad(positions[row], DataError(f"item {positions[row]}", "its embedding is not finite "
                                       "(NaN or infinite; check the input's values)"),
             on_error, failures)
    return embedded[finite]


def _bad(index: int, error: DataError, on_error: str,
         failures: list[tuple[int, str]] | None) -> None:
    if on_error == "raise":
        raise error from None
    if failures is not None:
        failures.append((index, str(error)))
