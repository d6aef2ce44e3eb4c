"""Building blocks shared by the encoders of every plugin.

One pre-norm transformer block serves the audio, image, text and point-cloud transformers
(each plugin used to carry its own copy), and one masked mean serves every encoder that
pools over padded tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SelfAttention", "TransformerBlock", "masked_mean", "transformer_trunk"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is True.

    A row without any real position gives zeros, never NaN.

    Args:
        x: the token features.
        mask: True (or 1) on real positions.

    Shapes:
        x: ``[B, L, D]``; mask: ``[B, L]``; output: ``[B, D]``.
    """
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class SelfAttention(nn.Module):
    """Multi-head self-attention (``scaled_dot_product_attention``) that ignores padding.

    Args:
        dim: token width.
        heads: attention heads; ``dim`` must divide by it.
        dropout: dropout on the attention weights, in training.

    Shapes:
        x: ``[B, L, dim]``; keep: ``[B, L]`` bool (True: a real token) or None;
        output: ``[B, L, dim]``.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over the tokens of each row; padded keys (``keep`` False) are masked."""
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        # Padded keys are never attended to; padded queries still attend to the real tokens,
        # so no softmax row is empty (every sequence has a real token) and nothing is NaN.
        attn_mask = None if keep is None else keep.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block (ViT style): ``x + attn(LN(x))``, then ``x + MLP(LN(x))``.

    Args:
        dim: token width.
        heads: attention heads; ``dim`` must divide by it.
        mlp_ratio: hidden width of the MLP over ``dim``.
        dropout: dropout on attention weights and after each sub-layer.
        eps: LayerNorm epsilon (1e-6 as timm's ViT, 1e-5 as PyTorch's default).

    Shapes:
        x: ``[B, L, dim]``; keep: ``[B, L]`` bool (True: a real token) or None;
        output: ``[B, L, dim]``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the attention and MLP sub-layers (see the class for shapes)."""
        x = x + self.drop(self.attn(self.norm1(x), keep))
        return x + self.drop(self.mlp(self.norm2(x)))


def transformer_trunk(dim: int, depth: int, heads: int, mlp_ratio: float = 4.0,
                      dropout: float = 0.0, eps: float = 1e-5, who: str = "encoder",
                      ) -> tuple[nn.ModuleList, nn.LayerNorm]:
    """``depth`` pre-norm :class:`TransformerBlock` s and the final LayerNorm after them.

    The trunk of the ViT, text, AST and Point-BERT encoders. Returned as two modules (not
    wrapped in one) so that an encoder keeps its ``blocks.*`` / ``norm.*`` parameter names and
    the models saved before this helper existed still load.

    Args:
        dim: token width.
        depth: number of blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each block's MLP over ``dim``.
        dropout: dropout inside the blocks.
        eps: LayerNorm epsilon of the blocks and the final norm.
        who: the encoder's name, for the error.

    Raises:
        ValueError: ``heads`` does not divide ``dim``, or ``depth`` < 1.
    """
    if heads < 1 or dim % heads:
        raise ValueError(f"{who}: heads={heads} must divide width={dim}")
    if depth < 1:
        raise ValueError(f"{who}: depth={depth}; expected at least one block")
    blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout, eps=eps)
                           for _ in range(depth))
    return blocks, nn.LayerNorm(dim, eps=eps)
