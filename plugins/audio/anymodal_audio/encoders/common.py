"""Pieces both audio encoders share: reading the batch, masked pooling, clip averaging."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from anymodal.layers import masked_mean

__all__ = ["average_clips", "masked_mean", "pad_to_multiple", "unpack_batch"]


def unpack_batch(batch: Any, n_mels: int, name: str
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(features, mask, item_index)`` from ``collate_audio``'s dict (or a bare tensor).

    Padded frames are zeroed here, so that whatever value a caller padded with, no
    encoder can read it.

    Shapes:
        features: ``[R, T, F]``; mask: ``[R, T]``; item_index: ``[R]`` or None.
    """
    if torch.is_tensor(batch):
        features, mask, item_index = batch, None, None
    else:
        features, mask, item_index = batch["features"], batch.get("mask"), batch.get("item_index")
    if features.dim() != 3 or features.shape[-1] != n_mels:
        raise ValueError(f"{name} expects features [batch, frames, n_mels={n_mels}], got "
                         f"{list(features.shape)} (n_mels follows the modality's n_mels)")
    if mask is None:
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
    features = features.float().masked_fill(~mask[..., None], 0.0)
    return features, mask, item_index


def pad_to_multiple(x: torch.Tensor, mask: torch.Tensor, multiple: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad the time axis (dim 1) of ``x`` and ``mask`` to a multiple of ``multiple``.

    A batch padded to its longest item and a lone item padded here then agree position
    by position, which keeps a row's output independent of the other rows.
    """
    extra = -x.shape[1] % multiple
    if extra:
        x = F.pad(x, (0, 0, 0, extra))
        mask = F.pad(mask, (0, extra), value=False)
    return x, mask


def average_clips(embeddings: torch.Tensor, item_index: torch.Tensor | None) -> torch.Tensor:
    """Average the clip embeddings of each item.

    Shapes:
        embeddings: ``[R, D]``; item_index: ``[R]`` (row -> item, items 0..B-1, each with at
        least one row) or None (one row per item); output: ``[B, D]``.
    """
    if item_index is None:
        return embeddings
    item_index = item_index.to(embeddings.device)
    num_items = int(item_index.max().item()) + 1
    sums = embeddings.new_zeros(num_items, embeddings.shape[1]).index_add(0, item_index,
                                                                         embeddings)
    counts = torch.bincount(item_index, minlength=num_items).clamp_min(1)
    return sums / counts[:, None].to(embeddings.dtype)
