"""Batching variable-length log-mel items with a frame mask."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

__all__ = ["collate_audio"]


def _collate_extracted(items: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Batch feature-extractor items (``{name: [K, ...]}``).

    Pads the first axis after the clip axis, says which positions are real, and which item
    each row belongs to.

    Returns:
        ``{"hf_inputs": {name: [R, L_max, ...]}, "hf_mask": BoolTensor[R, L_max]}``, plus
        ``"item_index"`` when some item has several clips.
    """
    name = next(iter(items[0]))
    rows: list[torch.Tensor] = []
    owners: list[int] = []
    for i, item in enumerate(items):
        if set(item) != {name}:
            raise ValueError(f"audio item {i} holds {sorted(item)}, item 0 holds [{name!r}]; "
                             "were they made with different processors?")
        rows.extend(item[name].unbind(0))
        owners.extend([i] * item[name].shape[0])
    lengths = torch.tensor([row.shape[0] for row in rows])
    values = pad_sequence(rows, batch_first=True)
    batch: dict[str, Any] = {
        "hf_inputs": {name: values},
        "hf_mask": torch.arange(values.shape[1])[None, :] < lengths[:, None],
    }
    if len(rows) != len(items):
        batch["item_index"] = torch.tensor(owners, dtype=torch.long)
    return batch


def collate_audio(items: list[Any]) -> dict[str, Any]:
    """Pad items to the longest one and mark the real frames.

    An item of several evaluation clips (``[K, T, F]``) contributes ``K`` rows; the batch then
    carries ``item_index`` (row -> item), and encoders average the rows of each item.

    Args:
        items: ``[T_i, F]`` or ``[K_i, T_i, F]`` tensors from ``transform`` (or, with the
            option ``processor``, its feature-extractor dicts).

    Returns:
        ``{"features": [R, T_max, F], "mask": BoolTensor[R, T_max]}`` (True: a real frame),
        plus ``"item_index": LongTensor[R]`` when some item has several clips
        (``R = sum K_i``; otherwise ``R = B``). Padding is 0.
    """
    if not items:
        raise ValueError("collate_audio needs at least one item")
    if isinstance(items[0], dict):
        return _collate_extracted(items)
    rows: list[torch.Tensor] = []
    owners: list[int] = []
    for i, item in enumerate(items):
        if item.dim() == 2:
            rows.append(item)
            owners.append(i)
        elif item.dim() == 3:
            rows.extend(item.unbind(0))
            owners.extend([i] * item.shape[0])
        else:
            raise ValueError(f"audio item {i} has shape {list(item.shape)}; expected "
                             "[T, n_mels] or [clips, T, n_mels]")
    bins = {row.shape[-1] for row in rows}
    if len(bins) > 1:
        raise ValueError(f"audio items have different mel bin counts {sorted(bins)}; "
                         "were they made with different modality options?")
    lengths = torch.tensor([row.shape[0] for row in rows])
    features = pad_sequence(rows, batch_first=True)
    mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
    batch = {"features": features, "mask": mask}
    if len(rows) != len(items):
        batch["item_index"] = torch.tensor(owners, dtype=torch.long)
    return batch
