"""``image_vit_tiny``: a small Vision Transformer (ViT) image encoder.

Patches are projected by a strided convolution, a class token and learned positions are
added, pre-norm blocks follow, then a final LayerNorm and the class token (or the mean of
the patch tokens). Inputs of another size than ``image_size`` are served by resizing the
position table to the new patch grid (bicubic), as timm's ``dynamic_img_size`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anymodal import encoder
from anymodal.layers import transformer_trunk
from anymodal_image.config import ViTTinyConfig

__all__ = ["ViTTiny"]


@encoder("image_vit_tiny", config=ViTTinyConfig, binds={"image_size": "size"})
class ViTTiny(nn.Module):
    """Small Vision Transformer (patch 16, 4 blocks, width 192).

    Args:
        config: its :class:`~anymodal_image.config.ViTTinyConfig`.

    Shapes:
        input: ``float [B, 3, H, W]`` (H, W >= ``patch_size``); output ``[B, width]``.
    """

    def __init__(self, config: ViTTinyConfig) -> None:
        super().__init__()
        if config.pool not in ("cls", "mean"):
            raise ValueError(f"image_vit_tiny: pool={config.pool!r}; use 'cls' or 'mean'")
        if config.image_size < config.patch_size:
            raise ValueError(f"image_vit_tiny: image_size={config.image_size} is smaller than "
                             f"patch_size={config.patch_size}")
        self.config = config
        self.width = config.width
        self.grid = config.image_size // config.patch_size
        self.patch = nn.Conv2d(3, config.width, config.patch_size, stride=config.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, config.width))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.cls, std=1e-6)
        self.blocks, self.norm = transformer_trunk(
            config.width, config.depth, config.heads, config.mlp_ratio, config.dropout,
            eps=1e-6, who="image_vit_tiny")

    def _positions(self, rows: int, cols: int) -> torch.Tensor:
        """The position table for a ``rows x cols`` patch grid (class token first)."""
        if (rows, cols) == (self.grid, self.grid):
            return self.pos
        table = self.pos[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(rows, cols), mode="bicubic", align_corners=False)
        return torch.cat([self.pos[:, :1], table.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        if images.dim() != 4 or images.shape[1] != 3 or min(images.shape[-2:]) < \
                self.config.patch_size:
            raise ValueError(f"image_vit_tiny expects [B, 3, H, W] with H, W >= "
                             f"{self.config.patch_size}, got {tuple(images.shape)}")
        x = self.patch(images.float())                       # [B, D, rows, cols]
        rows, cols = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)                     # [B, rows*cols, D]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self._positions(rows, cols)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 0] if self.config.pool == "cls" else x[:, 1:].mean(1)
