"""Checks both video encoders share."""

from __future__ import annotations

import torch

__all__ = ["check_clips"]


def check_clips(batch: torch.Tensor, name: str) -> torch.Tensor:
    """``batch`` as float ``[B, T, 3, H, W]``, or a ValueError that says what was expected."""
    if not torch.is_tensor(batch) or batch.dim() != 5 or batch.shape[2] != 3:
        shape = list(batch.shape) if torch.is_tensor(batch) else type(batch).__name__
        raise ValueError(f"{name} expects clips [batch, frames, 3, height, width], got {shape}")
    return batch.float()
