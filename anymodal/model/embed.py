"""The one embedding path: raw items (paths, bytes, strings, tensors) through a trained model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import send_to_device
from tqdm.auto import tqdm

from anymodal.errors import DataError

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
        on_error: ``raise`` (a :class:`DataError` naming the item's index) or ``skip``
            (the item is left out and ``(index, reason)`` appended to ``failures``).

    Shapes:
        output ``[n_ok, embed_dim]``.
    """
    if key not in model.modalities:
        raise KeyError(f"the model has no modality {key!r}; it has {sorted(model.modalities)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    spec = model.modalities[key]
    was_training = model.training
    model.eval()
    items = list(items)
    chunks: list[torch.Tensor] = []
    bar = tqdm(total=len(items), desc=f"embed {key}", disable=not progress, unit="item")
    try:
        for start in range(0, len(items), batch_size):
            prepared = []
            for offset, item in enumerate(items[start:start + batch_size]):
                index = start + offset
                try:
                    prepared.append(prepare_item(model, key, item))
                except DataError as exc:
                    if on_error == "raise":
                        raise DataError(f"item {index} ({exc.source})", exc.problem) from None
                    if failures is not None:
                        failures.append((index, str(exc)))
            if prepared:
                collated = send_to_device(spec.collate(prepared), model.device)
                chunks.append(model.encode(key, collated).float().cpu())
            bar.update(min(batch_size, len(items) - start))
    finally:
        bar.close()
        model.train(was_training)
    if not chunks:
        return torch.empty(0, model.embed_dim)
    return torch.cat(chunks)

