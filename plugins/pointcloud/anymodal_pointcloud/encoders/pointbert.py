"""``pointcloud_pointbert_tiny``: point patches as transformer tokens (Point-BERT, ULIP).

The recipe of Yu et al. (Point-BERT, 2022), which ULIP uses as its 3D encoder:

1. farthest-point sampling picks ``num_groups`` patch centres;
2. each centre's ``group_size`` nearest neighbours form a patch, in coordinates relative
   to the centre (extra channels, colours or normals, come along unchanged);
3. a mini-PointNet turns each patch into a token (shared MLP, max-pool, the pooled
   feature concatenated back onto each point, a second MLP, max-pool);
4. a transformer runs over a class token and the patch tokens, with a learnt positional
   embedding of each centre added before every layer;
5. the head reads the class token and the max over patch tokens.

Sampling starts at point 0, so the patches, and thus the output, are a deterministic
function of the input.
"""

from __future__ import annotations

import torch
from torch import nn

from anymodal import encoder
from anymodal.layers import TransformerBlock
from anymodal_pointcloud.config import PointBertConfig
from anymodal_pointcloud.encoders.pointnet import check_channels
from anymodal_pointcloud.sampling import farthest_point_sample, gather_points, knn

__all__ = ["PatchEmbed", "PointBertEncoder", "group_points"]


def group_points(points: torch.Tensor, num_groups: int, group_size: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches of nearest neighbours around farthest-point centres.

    Returns:
        ``(patches, centres)``: patches hold coordinates relative to their centre followed
        by the points' other channels.

    Shapes:
        points: ``[B, P, C]`` -> patches ``[B, G, K, C]``, centres ``[B, G, 3]``.
    """
    xyz = points[..., :3]
    centre_idx = farthest_point_sample(xyz, num_groups, start=0)  # [B, G]
    centres = gather_points(xyz, centre_idx)
    neighbours = knn(centres, xyz, group_size)  # [B, G, K]
    patches = gather_points(points, neighbours)  # [B, G, K, C]
    relative = patches[..., :3] - centres.unsqueeze(2)
    return torch.cat([relative, patches[..., 3:]], dim=-1), centres


class PatchEmbed(nn.Module):
    """Mini-PointNet: one token per patch.

    Per-point layer norm replaces Point-BERT's batch norm, so that a token depends on its
    own patch only (in training too) and a forward pass changes no running statistics.

    Shapes:
        patches: ``[B, G, K, C]`` -> tokens ``[B, G, dim]``.
    """

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.first = nn.Sequential(
            nn.Linear(in_channels, 64), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, 128),
        )
        self.second = nn.Sequential(
            nn.Linear(256, 256), nn.LayerNorm(256), nn.ReLU(), nn.Linear(256, dim),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Tokens of the patches (see the class docstring for shapes)."""
        x = self.first(patches)  # [B, G, K, 128]
        pooled = x.max(dim=2, keepdim=True).values.expand_as(x)
        x = self.second(torch.cat([pooled, x], dim=-1))  # [B, G, K, dim]
        return x.max(dim=2).values


@encoder("pointcloud_pointbert_tiny", config=PointBertConfig,
         binds={"in_channels": "channels"})
class PointBertEncoder(nn.Module):
    """Point-BERT/ULIP: FPS + kNN patches, mini-PointNet tokens, transformer.

    Shapes:
        input: ``[B, P, in_channels]`` with ``P >= max(num_groups, group_size)``;
        output: ``[B, width]``.
    """

    def __init__(self, config: PointBertConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        dim = config.dim
        self.embed = PatchEmbed(config.in_channels, dim)
        self.pos = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.layers = nn.ModuleList(
            TransformerBlock(dim, config.heads, config.mlp_ratio, config.dropout)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(2 * dim, config.width)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        check_channels("pointcloud_pointbert_tiny", batch, self.config.in_channels)
        points = batch.float()
        need = max(self.config.num_groups, self.config.group_size)
        if points.shape[1] < need:
            raise ValueError(
                f"pointcloud_pointbert_tiny needs at least {need} points per cloud "
                f"(num_groups={self.config.num_groups}, group_size={self.config.group_size}), "
                f"got {points.shape[1]}"
            )
        patches, centres = group_points(points, self.config.num_groups, self.config.group_size)
        tokens = self.embed(patches)  # [B, G, dim]
        b = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos(centres)], dim=1)
        for layer in self.layers:
            x = layer(x + pos)  # Point-BERT adds the positions before every block
        x = self.norm(x)
        return self.head(torch.cat([x[:, 0], x[:, 1:].max(dim=1).values], dim=-1))
