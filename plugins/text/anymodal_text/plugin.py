"""The ``text`` modality and its encoders (entry point ``text`` in the group ``anymodal``).

Importing this module is cheap: ``transformers`` is imported only when ``text_minilm`` or
``text_hf`` is built.
"""

from __future__ import annotations

from functools import partial

from anymodal import define_modality, plugin_hooks
from anymodal_text.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)
from anymodal_text.config import TextConfig, validate_text_config
from anymodal_text.encoders.hf import HFTextEncoder
from anymodal_text.encoders.minilm import MiniLMEncoder
from anymodal_text.encoders.open_clip_tower import OpenCLIPTextEncoder
from anymodal_text.encoders.transformer import TextTransformer
from anymodal_text.io import load_text
from anymodal_text.synthetic import MAX_CLASSES
from anymodal_text.transforms import collate_texts, synthesize_texts, transform_text

__all__ = ["TEXT", "anymodal_register_encoders", "anymodal_register_modalities"]

TEXT = define_modality(
    "text", TextConfig, load=load_text, transform=transform_text, collate=collate_texts,
    synthesize=synthesize_texts, validate=partial(validate_text_config, max_classes=MAX_CLASSES),
    default_encoder="text_transformer_tiny",
    description="text: strings, UTF-8 bytes or .txt files; byte-level ids + raw text",
)

anymodal_register_modalities, anymodal_register_encoders = plugin_hooks(
    modalities=[TEXT],
    encoders=[TextTransformer, MiniLMEncoder, HFTextEncoder, OpenCLIPTextEncoder],
)
