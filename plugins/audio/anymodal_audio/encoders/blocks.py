"""A pre-norm transformer block whose attention ignores padded tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + MLP (ViT style).

    Args:
        dim: token width.
        num_heads: attention heads (``dim`` must divide by it).
        mlp_ratio: hidden width of the MLP over ``dim``.
        dropout: dropout on attention weights and after each sub-layer.

    Shapes:
        x: ``[B, L, dim]``; keep: ``[B, L]`` bool (True: a real token) or None;
        output: ``[B, L, dim]``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        # Padded keys are never attended to; padded queries still attend to real tokens, so
        # no softmax row is empty (each sequence has a real token) and nothing turns NaN.
        attn_mask = None if keep is None else keep[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x), keep))
        return x + self.drop(self.mlp(self.norm2(x)))
