"""``text_transformer_tiny``: byte embeddings and a small pre-norm transformer.

Learned byte and position embeddings, ``depth`` pre-norm blocks
(:class:`anymodal.layers.TransformerBlock`, the padding masked out of the keys), a final
LayerNorm, then masked mean pooling or the BOS output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from anymodal import encoder
from anymodal.layers import masked_mean, transformer_trunk
from anymodal_text.config import TextTransformerConfig
from anymodal_text.tokenizer import VOCAB_SIZE

__all__ = ["TextTransformer"]


@encoder("text_transformer_tiny", config=TextTransformerConfig, binds=["max_length"])
class TextTransformer(nn.Module):
    """Byte-level tiny transformer, mean/CLS pooling.

    Args:
        config: its :class:`~anymodal_text.config.TextTransformerConfig`.

    Shapes:
        input: the text modality's collated dict, ``input_ids`` ``LongTensor[B, L]`` and
        ``attention_mask`` ``[B, L]`` (``L <= config.max_length``); output ``[B, width]``.
    """

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__()
        if config.pool not in ("mean", "cls"):
            raise ValueError(f"text_transformer_tiny: pool={config.pool!r}; use 'mean' or 'cls'")
        self.config = config
        self.width = config.width
        self.embed = nn.Embedding(VOCAB_SIZE, config.width)
        self.pos = nn.Parameter(torch.zeros(config.max_length, config.width))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks, self.norm = transformer_trunk(
            config.width, config.depth, config.heads, config.mlp_ratio, config.dropout,
            who="text_transformer_tiny")

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        ids, mask = batch["input_ids"], batch["attention_mask"].bool()
        if ids.shape[1] > self.config.max_length:
            raise ValueError(
                f"text_transformer_tiny holds {self.config.max_length} positions but got "
                f"{ids.shape[1]} tokens (max_length follows the text modality's max_length)"
            )
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        if self.config.pool == "cls":
            return x[:, 0]  # the BOS position
        return masked_mean(x, mask)
