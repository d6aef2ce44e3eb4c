"""From a raw ``[T, C]`` series to a model-ready item, and from items to a batch.

An item always has ``length`` time steps, so that a batch is a plain stack; a series
shorter than ``length`` is zero-padded and its ``mask`` says which steps are real, so that
the encoder can pool over real steps only.
"""

from __future__ import annotations

import torch

from anymodal import DataError
from anymodal_timeseries.config import TimeseriesConfig

__all__ = ["collate_series", "standardize", "transform_series"]


def standardize(series: torch.Tensor, eps: float) -> torch.Tensor:
    """Zero mean and unit variance per channel, over time.

    Shapes:
        series: ``[T, C]``; output: ``[T, C]``. A constant channel becomes zeros.
    """
    mean = series.mean(dim=0, keepdim=True)
    std = series.std(dim=0, unbiased=False, keepdim=True)
    return (series - mean) / (std + eps)


def transform_series(raw: torch.Tensor, train: bool,
                     config: TimeseriesConfig) -> dict[str, torch.Tensor]:
    """Standardise each channel over the whole series, then crop or pad it to ``length``.

    The statistics come from the whole series, not from the crop, so that a window's scale
    does not change with where it was cut. Training crops at a random offset (augmentation,
    from torch's global generator); evaluation crops the centre, so it is deterministic.

    Args:
        raw: a series from ``load``.
        train: random crop when True, centre crop when False.
        config: the modality's options (``length``, ``channels``, ``eps``).

    Shapes:
        raw: ``[T, C]``; output ``"series"``: ``[length, C]`` float32, ``"mask"``:
        ``[length]`` bool, True on the ``min(T, length)`` real steps (padding comes last).
    """
    if raw.ndim != 2 or raw.shape[1] != config.channels or raw.shape[0] == 0:
        raise DataError(f"<series of shape {tuple(raw.shape)}>",
                        f"expected [time >= 1, channels={config.channels}]")
    series = standardize(raw.float(), config.eps)
    steps, length = series.shape[0], config.length
    if steps >= length:
        extra = steps - length
        start = int(torch.randint(0, extra + 1, ())) if train and extra else extra // 2
        series = series[start:start + length]
        mask = torch.ones(length, dtype=torch.bool)
    else:
        padding = series.new_zeros(length - steps, series.shape[1])
        series = torch.cat([series, padding])
        mask = torch.arange(length) < steps
    return {"series": series.contiguous(), "mask": mask}


def collate_series(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items into a batch.

    Shapes:
        output ``"series"``: ``[B, length, C]``; ``"mask"``: ``[B, length]``.
    """
    if not items:
        raise ValueError("collate_series needs at least one item")
    return {"series": torch.stack([item["series"] for item in items]),
            "mask": torch.stack([item["mask"] for item in items])}
