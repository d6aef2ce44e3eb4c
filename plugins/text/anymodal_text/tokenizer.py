"""A byte-level tokenizer: no vocabulary file, any language, any script.

A text is normalised to Unicode NFC (so that "é" typed as one code point or as "e" plus
a combining accent gives the same ids), encoded as UTF-8, and each byte ``b`` becomes the
id ``b + 3``. Ids 0, 1 and 2 are PAD, BOS and EOS, so the vocabulary has 259 entries.
This is the ByT5 recipe, with explicit BOS/EOS so that a ``cls`` pooling has a position
to read from.
"""

from __future__ import annotations

import unicodedata

import torch

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "OFFSET",
    "PAD_ID",
    "VOCAB_SIZE",
    "decode",
    "encode",
    "normalize_text",
    "pad_ids",
]

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
OFFSET = 3
VOCAB_SIZE = 256 + OFFSET


def normalize_text(text: str) -> str:
    """NFC-normalise and strip leading/trailing whitespace."""
    return unicodedata.normalize("NFC", text).strip()


def encode(text: str, max_length: int, start: int = 0) -> torch.Tensor:
    """Token ids of ``text``: BOS, its UTF-8 bytes (at most ``max_length - 2``), EOS.

    Args:
        text: the (already normalised) text.
        max_length: the most ids returned, BOS and EOS included (>= 3).
        start: the first byte kept when the text is too long (a training crop); it is
            clamped so that the window stays inside the text.

    Shapes:
        output: ``LongTensor[min(len(bytes) + 2, max_length)]``.
    """
    data = text.encode("utf-8")
    room = max_length - 2
    if len(data) > room:
        start = max(0, min(start, len(data) - room))
        data = data[start:start + room]
    body = torch.tensor(list(data), dtype=torch.long) + OFFSET
    ends = torch.tensor([BOS_ID, EOS_ID], dtype=torch.long)
    return torch.cat([ends[:1], body, ends[1:]])


def decode(ids: torch.Tensor) -> str:
    """The text of ``ids``, special ids dropped.

    A byte sequence cut inside a character decodes with U+FFFD in its place.
    """
    data = bytes(int(i) - OFFSET for i in ids.tolist() if int(i) >= OFFSET)
    return data.decode("utf-8", errors="replace")


def pad_ids(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences to the longest one.

    Shapes:
        output: ``(input_ids LongTensor[B, L], attention_mask BoolTensor[B, L])``, the mask
        True on real tokens.
    """
    if not sequences:
        raise ValueError("cannot collate an empty list of texts")
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = True
    return ids, mask
