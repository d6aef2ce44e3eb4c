"""``audio_cnn_small``: a small VGG-style 2-D CNN over log-mel features (PANNs' CNN family).

Each block is ``convs_per_block`` 3x3 conv-norm-ReLU layers (1 by default, as PANNs' CNN6;
2 as CNN10/14) and a 2x2 average pool. After every layer the
padded frames are set back to zero, and the input is padded to a multiple of the total
pooling factor, so an item's embedding is the same alone or in a padded batch.

The norm is a LayerNorm over channels at each time-frequency position (as in ConvNeXt)
rather than batch norm: it keeps no running statistics and mixes no rows, so padded frames
and small CPU batches bias nothing, in training as in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anymodal import encoder
from anymodal_audio.encoders.common import (
    average_clips,
    masked_mean,
    pad_to_multiple,
    unpack_batch,
)

__all__ = ["AudioCNN", "AudioCNNConfig"]


@dataclass
class AudioCNNConfig:
    """Hyper-parameters of ``audio_cnn_small``.

    Args:
        n_mels: mel bins of the input (set from the modality's ``n_mels``).
        channels: output channels of each block (each block halves time and frequency).
        convs_per_block: 3x3 convolutions in each block.
        width: output width (a linear layer over the pooled channels).
        dropout: dropout before the output layer.
    """

    n_mels: int = 128
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    convs_per_block: int = 1
    width: int = 128
    dropout: float = 0.0


class _ConvNormReLU(nn.Module):
    """3x3 conv, LayerNorm over channels, ReLU; padded positions set to zero.

    Shapes:
        x: ``[R, C_in, T, F]``; keep: ``[R, 1, T, 1]`` (1.0 on real frames); output:
        ``[R, C_out, T, F]``.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return F.relu(x) * keep


@encoder("audio_cnn_small", config=AudioCNNConfig, binds=["n_mels"])
class AudioCNN(nn.Module):
    """Small VGG-style CNN over log-mel features: masked mean + max over time, linear output.

    Shapes:
        input: ``{"features": [R, T, n_mels], "mask": [R, T], "item_index"?: [R]}``;
        output: ``[B, width]``.
    """

    def __init__(self, config: AudioCNNConfig) -> None:
        super().__init__()
        if not config.channels or config.convs_per_block < 1:
            raise ValueError("audio_cnn_small needs at least one block in channels and "
                             "convs_per_block >= 1")
        self.config = config
        self.width = config.width
        self.factor = 2 ** len(config.channels)
        self.blocks = nn.ModuleList()
        cin = 1
        for cout in config.channels:
            self.blocks.append(nn.ModuleList(
                _ConvNormReLU(cin if i == 0 else cout, cout)
                for i in range(config.convs_per_block)
            ))
            cin = cout
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * cin, config.width)

    def forward(self, batch: Any) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        x, mask, item_index = unpack_batch(batch, self.config.n_mels, "audio_cnn_small")
        x, mask = pad_to_multiple(x, mask, self.factor)
        x = F.pad(x, (0, -x.shape[-1] % self.factor))[:, None]  # [R, 1, T, F]
        for block in self.blocks:
            keep = mask[:, None, :, None].to(x.dtype)
            for layer in block:
                x = layer(x, keep)
            # Halve time and frequency, and the mask (a cell is real if one frame of it is).
            x = F.avg_pool2d(x, 2)
            mask = mask.view(mask.shape[0], -1, 2).any(-1)
        frames = x.mean(dim=3).transpose(1, 2)  # [R, T'', C]
        mean = masked_mean(frames, mask)
        peak = frames.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        pooled = torch.cat([mean, peak], dim=-1)
        return average_clips(self.head(self.dropout(pooled)), item_index)
