"""The ``text`` modality's transform (byte tokenisation), collate and synthesize.

An item is ``{"input_ids": LongTensor[L], "text": str}``: the byte ids that
``text_transformer_tiny`` reads, and the normalised text itself. The collated value is
``{"input_ids": LongTensor[B, L], "attention_mask": BoolTensor[B, L], "text": list[str]}``.

Why the raw text travels with the ids: a pretrained encoder (``text_minilm``) needs its
own WordPiece tokenizer, whose ids depend on the encoder's files and not on the modality's
options. Tokenising inside that encoder keeps the modality independent of the encoder a
recipe picks (a recipe changes its text encoder without touching its data options), and
the cost is one fast Rust tokenizer call per batch. The alternative, a modality option
naming the tokenizer, would make every recipe state the same choice twice.
"""

from __future__ import annotations

from typing import Any

import torch

from anymodal_text.config import TextConfig
from anymodal_text.synthetic import make_sentences
from anymodal_text.tokenizer import encode, pad_ids

__all__ = ["collate_texts", "synthesize_texts", "transform_text"]

TextItem = dict[str, Any]


def transform_text(raw: str, train: bool, config: TextConfig) -> TextItem:
    """Tokenise ``raw`` into byte ids with BOS/EOS, truncated to ``config.max_length``.

    In training with ``random_crop``, a text too long to fit keeps a random window of
    bytes (drawn from torch's global generator, which DataLoader seeds per worker).

    Shapes:
        output ``input_ids``: ``LongTensor[min(len(utf8) + 2, max_length)]``.
    """
    start = 0
    overflow = len(raw.encode("utf-8")) - (config.max_length - 2)
    if train and config.random_crop and overflow > 0:
        start = int(torch.randint(overflow + 1, (1,)))
    return {"input_ids": encode(raw, config.max_length, start), "text": raw}


def collate_texts(items: list[TextItem]) -> dict[str, Any]:
    """Pad a list of items into one batch.

    Shapes:
        output: ``input_ids`` ``LongTensor[B, L]`` (0 = PAD), ``attention_mask``
        ``BoolTensor[B, L]`` (True on real tokens), ``text`` ``list[str]`` of length B.
    """
    ids, mask = pad_ids([item["input_ids"] for item in items])
    return {"input_ids": ids, "attention_mask": mask, "text": [item["text"] for item in items]}


def synthesize_texts(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                     *, config: TextConfig) -> list[TextItem]:
    """``n`` eval-mode items of template sentences (see :mod:`anymodal_text.synthetic`)."""
    sentences, _ = make_sentences(n, generator, labels, config.num_classes)
    return [transform_text(s, False, config) for s in sentences]
