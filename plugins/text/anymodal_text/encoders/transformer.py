"""``text_transformer_tiny``: byte embeddings and a small pre-norm transformer.

Learned byte and position embeddings, ``depth`` pre-norm blocks (attention through
``scaled_dot_product_attention`` with the padding masked out of the keys), a final
LayerNorm, then masked mean pooling or the BOS output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anymodal_text.config import TextTransformerConfig
from anymodal_text.tokenizer import VOCAB_SIZE

__all__ = ["Block", "TextTransformer", "masked_mean"]


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` over the positions where ``mask`` is True.

    Shapes:
        hidden: ``[B, L, D]``; mask: ``[B, L]`` (bool or 0/1); output: ``[B, D]``.
    """
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    # clamp: a row with no real token (never made by collate) gives zeros, not NaN.
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)).

    Shapes:
        x: ``[B, L, D]``; key_mask: ``BoolTensor[B, L]`` (True = real token); output ``[B, L, D]``.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        x = x + self.proj(attn.transpose(1, 2).reshape(b, length, width))
        return x + self.mlp(self.norm2(x))


class TextTransformer(nn.Module):
    """A byte-level transformer text encoder.

    Args:
        config: its :class:`~anymodal_text.config.TextTransformerConfig`.

    Shapes:
        input: the text modality's collated dict, ``input_ids`` ``LongTensor[B, L]`` and
        ``attention_mask`` ``[B, L]`` (``L <= config.max_length``); output ``[B, width]``.
    """

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__()
        if config.width % config.heads:
            raise ValueError(f"text_transformer_tiny: heads={config.heads} must divide "
                             f"width={config.width}")
        if config.pool not in ("mean", "cls"):
            raise ValueError(f"text_transformer_tiny: pool={config.pool!r}; use 'mean' or 'cls'")
        self.config = config
        self.width = config.width
        self.embed = nn.Embedding(VOCAB_SIZE, config.width)
        self.pos = nn.Parameter(torch.zeros(config.max_length, config.width))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, config.mlp_ratio, config.dropout)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"].bool()
        if ids.shape[1] > self.config.max_length:
            raise ValueError(
                f"text_transformer_tiny holds {self.config.max_length} positions but got "
                f"{ids.shape[1]} tokens; set the encoder param max_length to at least the "
                "text modality's max_length"
            )
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        if self.config.pool == "cls":
            return x[:, 0]  # the BOS position
        return masked_mean(x, mask)
