"""The hook implementations of anymodal-text (entry point ``text`` in group ``anymodal``)."""

from __future__ import annotations

from typing import Any

from anymodal import EncoderSpec, hookimpl
from anymodal_text.config import MiniLMConfig, TextConfig, TextTransformerConfig
from anymodal_text.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)


def _build_transformer(config: TextTransformerConfig) -> Any:
    from anymodal_text.encoders.transformer import TextTransformer

    return TextTransformer(config)


def _build_minilm(config: MiniLMConfig) -> Any:
    # Registered even without its extra: building it then says what to install.
    from anymodal_text.encoders.minilm import MiniLMEncoder

    return MiniLMEncoder(config)


@hookimpl
def anymodal_register_modalities(register: Any) -> None:
    from anymodal_text.modality import make_text_modality

    register(make_text_modality(TextConfig()))


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("text_transformer_tiny", "text", _build_transformer,
                         TextTransformerConfig, "byte-level tiny transformer, mean/CLS pooling"))
    register(EncoderSpec("text_minilm", "text", _build_minilm, MiniLMConfig,
                         "pretrained all-MiniLM-L6-v2 (offline), mean pooling; needs "
                         "anymodal-text[minilm]"))
