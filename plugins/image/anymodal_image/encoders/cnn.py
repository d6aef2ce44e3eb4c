"""``image_cnn_small``: a small residual CNN image encoder.

A 3x3 stem at stride 2, then one stage per entry of ``channels``, each opening with a
strided residual block (a 1x1 projection on the shortcut), global average pooling and a
linear map to ``width``. GroupNorm is the default normalisation: unlike BatchNorm it does
not mix the rows of a batch, which matters with the small batches of contrastive
fine-tuning on one machine.
"""

from __future__ import annotations

import torch
from torch import nn

from anymodal import encoder
from anymodal_image.config import CNNSmallConfig

__all__ = ["CNNSmall", "ResidualBlock"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """conv3x3-norm-ReLU-conv3x3-norm plus a shortcut, then ReLU.

    Shapes:
        x: ``[B, C_in, H, W]``; output ``[B, C_out, ceil(H / stride), ceil(W / stride)]``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), _norm(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), _norm(norm, c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          _norm(norm, c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block (see the class docstring for shapes)."""
        return self.act(self.body(x) + self.shortcut(x))


@encoder("image_cnn_small", config=CNNSmallConfig)
class CNNSmall(nn.Module):
    """Small residual CNN with GroupNorm.

    Args:
        config: its :class:`~anymodal_image.config.CNNSmallConfig`.

    Shapes:
        input: ``float [B, 3, H, W]``; output ``[B, width]``.
    """

    def __init__(self, config: CNNSmallConfig) -> None:
        super().__init__()
        if config.norm not in ("group", "batch"):
            raise ValueError(f"image_cnn_small: norm={config.norm!r}; use 'group' or 'batch'")
        if not config.channels or config.blocks < 1:
            raise ValueError("image_cnn_small: channels must be non-empty and blocks >= 1")
        self.config = config
        self.width = config.width
        first = config.channels[0]
        layers: list[nn.Module] = [nn.Conv2d(3, first, 3, 2, 1, bias=False),
                                   _norm(config.norm, first), nn.ReLU(inplace=True)]
        c_in = first
        for c_out in config.channels:
            layers.append(ResidualBlock(c_in, c_out, 2, config.norm))
            layers += [ResidualBlock(c_out, c_out, 1, config.norm)
                       for _ in range(config.blocks - 1)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, config.width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"image_cnn_small expects [B, 3, H, W], got {tuple(images.shape)}")
        return self.head(self.features(images.float()).mean(dim=(2, 3)))
