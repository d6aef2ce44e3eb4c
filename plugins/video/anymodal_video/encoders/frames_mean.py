"""``video_frames_mean``: a small 2-D CNN applied to every frame, pooled over time."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from anymodal import encoder
from anymodal_video.encoders.common import check_clips

__all__ = ["FramesMean", "FramesMeanConfig"]

TEMPORAL_POOLS = ("mean", "max")


@dataclass
class FramesMeanConfig:
    """Hyper-parameters of ``video_frames_mean``.

    Args:
        channels: output channels of the stem (a 4x4 stride-4 patchify convolution, as in
            ConvNeXt) and of each following stage (each halves height and width).
        width: output width (a linear layer over the pooled features).
        temporal_pool: ``"mean"`` or ``"max"`` over the frames' features.
        dropout: dropout before the output layer.
    """

    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    width: int = 128
    temporal_pool: str = "mean"
    dropout: float = 0.0


def _conv_gn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    # GroupNorm normalises each frame on its own: no running statistics, no batch mixing.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True))


@encoder("video_frames_mean", config=FramesMeanConfig)
class FramesMean(nn.Module):
    """Small 2-D CNN on each frame, pooled over time.

    A patchify stem, stride-2 stages of two 3x3 convs, global average pool, temporal pool.

    Shapes:
        input: ``[B, T, 3, H, W]``; output: ``[B, width]``.
    """

    def __init__(self, config: FramesMeanConfig) -> None:
        super().__init__()
        if not config.channels:
            raise ValueError("video_frames_mean needs at least one stage in channels")
        if config.temporal_pool not in TEMPORAL_POOLS:
            raise ValueError(f"video_frames_mean: temporal_pool must be one of "
                             f"{TEMPORAL_POOLS}, got {config.temporal_pool!r}")
        self.config = config
        self.width = config.width
        cin = config.channels[0]
        # The stem cuts the frame into 4x4 patches: no convolution runs at full resolution,
        # which keeps 224x224 clips affordable on a CPU.
        stages: list[nn.Module] = [
            nn.Conv2d(3, cin, 4, stride=4), nn.GroupNorm(min(8, cin), cin), nn.ReLU(inplace=True)
        ]
        for cout in config.channels[1:]:
            stages += [_conv_gn_relu(cin, cout, 2), _conv_gn_relu(cout, cout, 1)]
            cin = cout
        self.backbone = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(cin, config.width)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        clips = check_clips(batch, "video_frames_mean")
        size, frames = clips.shape[:2]
        features = self.backbone(clips.flatten(0, 1)).mean(dim=(2, 3))  # [B*T, C]
        features = features.view(size, frames, -1)
        pooled = features.mean(1) if self.config.temporal_pool == "mean" else features.amax(1)
        return self.head(self.dropout(pooled))
