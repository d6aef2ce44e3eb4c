"""``timeseries_cnn1d``: a residual 1-D CNN over ``[B, T, C]`` series with a padding mask.

Normalisation is a LayerNorm over the hidden channels of each time step, never BatchNorm or
GroupNorm: their statistics mix rows (BatchNorm) or time steps including padding
(GroupNorm), so a row's embedding would depend on its batch or on how much it was padded.
Padded steps are zeroed after every block and ignored by the pooling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from anymodal import ConfigError, encoder

__all__ = ["TimeseriesCNN1d", "TimeseriesCNN1dConfig"]


@dataclass
class TimeseriesCNN1dConfig:
    """Hyper-parameters of ``timeseries_cnn1d``.

    Args:
        in_channels: channels of the input series (set from the modality's ``channels``).
        hidden: channels of the hidden layers.
        depth: residual blocks; block ``i`` has dilation ``2**i``, so the receptive field
            grows to ``1 + (kernel_size - 1) * (2**depth - 1)`` steps without striding.
        kernel_size: odd temporal kernel size.
        width: output width (the embedding size before anymodal's projection head).
        dropout: dropout inside each block.
    """

    in_channels: int = 3
    hidden: int = 64
    depth: int = 4
    kernel_size: int = 5
    width: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"encoder 'timeseries_cnn1d': kernel_size must be odd (padding "
                              f"keeps the length), got {self.kernel_size}")
        for name in ("in_channels", "hidden", "width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"encoder 'timeseries_cnn1d': {name} must be >= 1, got "
                                  f"{getattr(self, name)}")


class _Block(nn.Module):
    """Pre-norm residual block: LayerNorm, dilated conv, GELU, dropout, pointwise conv."""

    def __init__(self, hidden: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size // 2))
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.mix = nn.Conv1d(hidden, hidden, 1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Shapes: ``x`` ``[B, T, H]``; ``keep`` ``[B, T, 1]`` (1.0 on real steps)."""
        # Zero the padding after the norm too, so the conv sees zeros there (as at the ends).
        y = (self.norm(x) * keep).transpose(1, 2)
        y = self.mix(self.drop(self.act(self.conv(y)))).transpose(1, 2)
        return (x + y) * keep


@encoder("timeseries_cnn1d", config=TimeseriesCNN1dConfig, binds={"in_channels": "channels"})
class TimeseriesCNN1d(nn.Module):
    """Residual dilated 1-D CNN, LayerNorm, masked mean+max pooling.

    Args:
        config: its hyper-parameters.

    Shapes:
        input: ``{"series": [B, T, in_channels], "mask": [B, T]}`` (a collated batch), or a
        plain ``[B, T, in_channels]`` tensor with no padding; output: ``[B, width]``.
    """

    def __init__(self, config: TimeseriesCNN1dConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        self.stem = nn.Linear(config.in_channels, config.hidden)
        self.blocks = nn.ModuleList(
            _Block(config.hidden, config.kernel_size, 2**i, config.dropout)
            for i in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.hidden)
        self.head = nn.Linear(2 * config.hidden, config.width)

    def forward(self, batch: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        series, mask = _unpack(batch)
        if series.ndim != 3 or series.shape[-1] != self.config.in_channels:
            raise ValueError(
                f"timeseries_cnn1d expects series [B, T, in_channels={self.config.in_channels}]"
                f", got {tuple(series.shape)} (in_channels follows the modality's channels)"
            )
        if mask.shape != series.shape[:2]:
            raise ValueError(f"timeseries_cnn1d: mask {tuple(mask.shape)} does not match "
                             f"series {tuple(series.shape)}; expected [B, T]")
        keep = mask.unsqueeze(-1).float()
        x = self.stem(series.float()) * keep
        for block in self.blocks:
            x = block(x, keep)
        x = self.norm(x)
        count = keep.sum(dim=1).clamp_min(1.0)
        mean = (x * keep).sum(dim=1) / count
        peak = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # no real step
        return self.head(torch.cat([mean, peak], dim=-1))


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        series = batch["series"]
        mask = batch.get("mask")
    else:
        series, mask = batch, None
    if mask is None:
        mask = torch.ones(series.shape[:2], dtype=torch.bool, device=series.device)
    return series, mask.to(device=series.device, dtype=torch.bool)
