"""``video_timesformer_tiny``: TimeSformer with divided space-time attention, kept tiny.

Bertasius et al., "Is Space-Time Attention All You Need for Video Understanding?" (2021):
every frame is cut into patches; each block attends first over time (the same patch
position across frames), then over space (the patches of one frame, plus the [CLS]
token), then applies an MLP. Position tables are interpolated when the input's frame count
or size differs from the configured one, so one model reads any clip shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from anymodal import encoder
from anymodal.layers import SelfAttention
from anymodal_video.encoders.common import check_clips

__all__ = ["DividedSpaceTimeBlock", "TimeSformer", "TimeSformerConfig"]


@dataclass
class TimeSformerConfig:
    """Hyper-parameters of ``video_timesformer_tiny``.

    Args:
        image_size: frame side the spatial position table is made for (set from the
            modality's ``size``).
        patch_size: side of a square patch.
        num_frames: frames the temporal position table is made for (set from the
            modality's ``num_frames``).
        embed_dim: token width, and the encoder's output ``width``.
        depth: blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        dropout: dropout in the blocks.
    """

    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 8
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention, spatial attention (with [CLS]), MLP; all pre-norm residual.

    Shapes:
        cls: ``[B, 1, D]``; x: ``[B, T, S, D]`` (``S`` patches a frame); outputs: same.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm_time = nn.LayerNorm(dim)
        self.attn_time = SelfAttention(dim, num_heads, dropout)
        # Zero-initialised as in TimeSformer: the block starts as a purely spatial ViT block.
        self.time_fc = nn.Linear(dim, dim)
        nn.init.zeros_(self.time_fc.weight)
        nn.init.zeros_(self.time_fc.bias)
        self.norm_space = nn.LayerNorm(dim)
        self.attn_space = SelfAttention(dim, num_heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, cls: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the block to [CLS] and the patch tokens (shapes in the class docstring)."""
        batch, frames, patches, dim = x.shape
        # Time: each patch position attends across the frames.
        xt = x.transpose(1, 2).reshape(batch * patches, frames, dim)
        xt = self.time_fc(self.attn_time(self.norm_time(xt)))
        x = x + self.drop(xt.view(batch, patches, frames, dim).transpose(1, 2))
        # Space: each frame's patches attend to each other and to a copy of [CLS]; the
        # copies' outputs are averaged back into the one [CLS].
        xs = torch.cat([cls.repeat_interleave(frames, dim=0),
                        x.reshape(batch * frames, patches, dim)], dim=1)
        ys = self.attn_space(self.norm_space(xs))
        cls = cls + self.drop(ys[:, :1].view(batch, frames, 1, dim).mean(1))
        x = x + self.drop(ys[:, 1:].view(batch, frames, patches, dim))
        cls = cls + self.drop(self.mlp(self.norm_mlp(cls)))
        x = x + self.drop(self.mlp(self.norm_mlp(x)))
        return cls, x


@encoder("video_timesformer_tiny", config=TimeSformerConfig,
         binds={"image_size": "size", "num_frames": "num_frames"})
class TimeSformer(nn.Module):
    """Tiny TimeSformer: divided space-time attention over frame patches, read out through [CLS].

    Shapes:
        input: ``[B, T, 3, H, W]``; output: ``[B, embed_dim]``.
    """

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.config = config
        self.width = dim = config.embed_dim
        self.grid = max(config.image_size // config.patch_size, 1)
        self.patch_embed = nn.Conv2d(3, dim, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.space_pos = nn.Parameter(torch.zeros(1, dim, self.grid, self.grid))
        self.time_pos = nn.Parameter(torch.zeros(1, dim, config.num_frames))
        self.blocks = nn.ModuleList(
            DividedSpaceTimeBlock(dim, config.num_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim)
        for param in (self.cls_token, self.space_pos, self.time_pos):
            nn.init.trunc_normal_(param, std=0.02)

    def _positions(self, frames: int, height: int, width: int) -> torch.Tensor:
        """``[1, T, S, D]`` position embeddings, interpolated to the input's grid."""
        space = self.space_pos
        if (height, width) != space.shape[-2:]:
            space = F.interpolate(space, size=(height, width), mode="bicubic",
                                  align_corners=False)
        time = self.time_pos
        if frames != time.shape[-1]:
            time = F.interpolate(time, size=frames, mode="linear", align_corners=False)
        space = space.flatten(2).transpose(1, 2)[:, None]  # [1, 1, S, D]
        return space + time.transpose(1, 2)[:, :, None]  # + [1, T, 1, D]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        clips = check_clips(batch, "video_timesformer_tiny")
        size, frames = clips.shape[0], clips.shape[1]
        if min(clips.shape[-2:]) < self.config.patch_size:
            raise ValueError(f"video_timesformer_tiny: frames {list(clips.shape[-2:])} are "
                             f"smaller than patch_size={self.config.patch_size}")
        patches = self.patch_embed(clips.flatten(0, 1))  # [B*T, D, H', W']
        grid_h, grid_w = patches.shape[-2:]
        x = patches.flatten(2).transpose(1, 2).reshape(size, frames, grid_h * grid_w, -1)
        x = x + self._positions(frames, grid_h, grid_w)
        cls = self.cls_token.expand(size, -1, -1)
        for block in self.blocks:
            cls, x = block(cls, x)
        return self.norm(cls[:, 0])
