"""``pointcloud_pointnet``: a shared per-point MLP, max-pooled (Qi et al., 2017).

The spatial and feature transformer nets (T-Nets) of the paper are left out: the
modality's training rotations already teach the invariance that matters here, and
the net stays small enough for a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from anymodal import encoder
from anymodal_pointcloud.config import PointNetConfig

__all__ = ["PointNetEncoder", "check_channels"]


def check_channels(name: str, batch: torch.Tensor, in_channels: int) -> None:
    """Raise a ValueError that says what to set when the batch's ``C`` differs."""
    if batch.dim() != 3 or batch.shape[-1] != in_channels:
        raise ValueError(
            f"{name} expects point clouds [B, P, {in_channels}], got {tuple(batch.shape)}; "
            "(in_channels follows the modality's channels: 3 + 3*use_colors + 3*use_normals)"
        )


@encoder("pointcloud_pointnet", config=PointNetConfig, binds={"in_channels": "channels"})
class PointNetEncoder(nn.Module):
    """PointNet: shared per-point MLP + max-pool, then an MLP head.

    Layer norm on each point's features stands in for the paper's batch norm: an
    embedding then depends on its own cloud alone, in training as in eval, and the
    module holds no running statistics that a forward pass would change.

    Shapes:
        input: ``[B, P, in_channels]``; output: ``[B, width]``.
    """

    def __init__(self, config: PointNetConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        layers: list[nn.Module] = []
        channels = config.in_channels
        for out in config.channels:
            # applied to the last dimension, a Linear is the paper's shared per-point MLP
            layers += [nn.Linear(channels, out), nn.LayerNorm(out), nn.ReLU()]
            channels = out
        self.point_mlp = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(channels, config.head_hidden),
            nn.LayerNorm(config.head_hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, config.width),
        )

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        check_channels("pointcloud_pointnet", batch, self.config.in_channels)
        features = self.point_mlp(batch.float())  # [B, P, C']
        return self.head(features.max(dim=1).values)
