"""The raw strings of a text batch, for encoders that bring their own tokenizer."""

from __future__ import annotations

from typing import Any

__all__ = ["raw_texts"]


def raw_texts(batch: Any, encoder: str) -> list[str]:
    """``batch["text"]``: the strings the text modality carries beside its byte ids.

    Args:
        batch: the text modality's collated batch.
        encoder: the encoder's registered name, for the error.

    Raises:
        ValueError: the batch has no list of strings under ``"text"`` (it was collated by
            another modality, or built by hand without them).
    """
    texts = batch.get("text") if isinstance(batch, dict) else None
    if not isinstance(texts, list):
        raise ValueError(f"{encoder} reads the raw strings of the text modality's batch "
                         "(key 'text', a list of str), which this batch lacks")
    return texts
