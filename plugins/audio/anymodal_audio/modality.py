"""The ``audio`` :class:`anymodal.ModalitySpec`, with its options bound."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from anymodal import ModalitySpec
from anymodal_audio.collate import collate_audio
from anymodal_audio.config import AudioConfig, validate_audio_config
from anymodal_audio.io import load_audio
from anymodal_audio.synthetic import synthesize_audio
from anymodal_audio.transforms import transform_audio

__all__ = ["make_audio_modality"]


def _load(source: Any, *, config: AudioConfig) -> torch.Tensor:
    return load_audio(source, config)


def _transform(raw: torch.Tensor, train: bool, *, config: AudioConfig) -> torch.Tensor:
    return transform_audio(raw, train, config)


def _synthesize(n: int, generator: torch.Generator, labels: torch.Tensor | None = None, *,
                config: AudioConfig) -> list[torch.Tensor]:
    return synthesize_audio(n, generator, labels, config)


def make_audio_modality(config: AudioConfig | None = None) -> ModalitySpec:
    """The audio modality with ``config`` bound (``partial``s, so specs pickle to workers).

    Raises:
        anymodal.ConfigError: an option is out of range.
    """
    config = validate_audio_config(config or AudioConfig())
    return ModalitySpec(
        name="audio",
        load=partial(_load, config=config),
        transform=partial(_transform, config=config),
        collate=collate_audio,
        synthesize=partial(_synthesize, config=config),
        default_encoder="audio_ast_tiny",
        num_classes=config.num_classes,
        config_cls=AudioConfig,
        configure=make_audio_modality,
        description="audio files and video soundtracks as log-mel features (fbank/melspec)",
    )
