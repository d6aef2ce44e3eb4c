"""``audio_ast_tiny``: an Audio Spectrogram Transformer (Gong et al., 2021), kept tiny.

The log-mel spectrogram is cut into non-overlapping ``patch_time x patch_freq`` patches,
embedded linearly, given separable learned time and frequency positions, and read by a
pre-norm transformer through a [CLS] token. Patches made only of padding are masked out
of attention, and padding inside a partly real patch is zeroed, so an item's embedding
does not depend on how long the other items of its batch are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from anymodal import encoder
from anymodal.layers import transformer_trunk
from anymodal_audio.encoders.common import average_clips, pad_to_multiple, unpack_batch

__all__ = ["AudioAST", "AudioASTConfig"]


@dataclass
class AudioASTConfig:
    """Hyper-parameters of ``audio_ast_tiny``.

    Args:
        n_mels: mel bins of the input (set from the modality's ``n_mels``).
        patch_time: frames per patch.
        patch_freq: mel bins per patch.
        embed_dim: token width, and the encoder's output ``width``.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        dropout: dropout in the blocks.
        max_frames: longest input in frames (sizes the time position table; 2 s at a 10 ms
            shift is 198 frames).
    """

    n_mels: int = 128
    patch_time: int = 16
    patch_freq: int = 16
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    max_frames: int = 1024


@encoder("audio_ast_tiny", config=AudioASTConfig, binds=["n_mels"])
class AudioAST(nn.Module):
    """Tiny Audio Spectrogram Transformer over log-mel patches.

    Shapes:
        input: ``{"features": [R, T, n_mels], "mask": [R, T], "item_index"?: [R]}``;
        output: ``[B, embed_dim]`` (clips of one item averaged).
    """

    def __init__(self, config: AudioASTConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.embed_dim
        self.freq_patches = -(-config.n_mels // config.patch_freq)
        self.max_time_patches = -(-config.max_frames // config.patch_time)
        dim = config.embed_dim
        self.patch_embed = nn.Conv2d(1, dim, kernel_size=(config.patch_time, config.patch_freq),
                                     stride=(config.patch_time, config.patch_freq))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.time_pos = nn.Parameter(torch.zeros(1, self.max_time_patches, 1, dim))
        self.freq_pos = nn.Parameter(torch.zeros(1, 1, self.freq_patches, dim))
        self.blocks, self.norm = transformer_trunk(
            dim, config.depth, config.num_heads, config.mlp_ratio, config.dropout,
            who="audio_ast_tiny")
        for param in (self.cls_token, self.time_pos, self.freq_pos):
            nn.init.trunc_normal_(param, std=0.02)

    def forward(self, batch: Any) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        cfg = self.config
        x, mask, item_index = unpack_batch(batch, cfg.n_mels, "audio_ast_tiny")
        x, mask = pad_to_multiple(x, mask, cfg.patch_time)
        time_patches = x.shape[1] // cfg.patch_time
        if time_patches > self.max_time_patches:
            raise ValueError(f"audio_ast_tiny got {x.shape[1]} frames, more than max_frames="
                             f"{cfg.max_frames}; raise the encoder's max_frames")
        x = nn.functional.pad(x, (0, self.freq_patches * cfg.patch_freq - cfg.n_mels))
        tokens = self.patch_embed(x[:, None]).permute(0, 2, 3, 1)  # [R, T', F', D]
        tokens = tokens + self.time_pos[:, :time_patches] + self.freq_pos
        rows = tokens.shape[0]
        tokens = tokens.reshape(rows, -1, self.width)
        # A patch is real if any of its frames is; padding inside it was zeroed above.
        keep = mask.view(rows, time_patches, cfg.patch_time).any(-1)
        keep = keep[:, :, None].expand(-1, -1, self.freq_patches).reshape(rows, -1)
        tokens = torch.cat([self.cls_token.expand(rows, -1, -1), tokens], dim=1)
        keep = torch.cat([keep.new_ones(rows, 1), keep], dim=1)
        for block in self.blocks:
            tokens = block(tokens, keep)
        return average_clips(self.norm(tokens[:, 0]), item_index)
