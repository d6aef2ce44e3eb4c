"""Batching clips."""

from __future__ import annotations

import torch

__all__ = ["collate_video"]


def collate_video(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack clips into a batch.

    Every clip of a modality has the same shape: ``transform`` always samples
    ``num_frames`` frames (repeating frames of short videos) and crops ``size x size``, so
    no padding or mask is needed.

    Shapes:
        items: ``[T, 3, H, W]`` each; output: ``[B, T, 3, H, W]``.
    """
    if not items:
        raise ValueError("collate_video needs at least one item")
    shapes = {tuple(item.shape) for item in items}
    if len(shapes) > 1:
        raise ValueError(f"video items have different shapes {sorted(shapes)}; were they "
                         "made with different modality options (num_frames, size)?")
    return torch.stack(items)
