"""The ``video`` :class:`anymodal.ModalitySpec`, with its options bound."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from anymodal import ModalitySpec
from anymodal_video.collate import collate_video
from anymodal_video.config import VideoConfig, validate_video_config
from anymodal_video.io import VideoSource, load_video
from anymodal_video.synthetic import synthesize_video
from anymodal_video.transforms import transform_video

__all__ = ["make_video_modality"]


def _load(source: Any, *, config: VideoConfig) -> VideoSource:
    return load_video(source, config)


def _transform(raw: VideoSource, train: bool, *, config: VideoConfig) -> torch.Tensor:
    return transform_video(raw, train, config)


def _synthesize(n: int, generator: torch.Generator, labels: torch.Tensor | None = None, *,
                config: VideoConfig) -> list[torch.Tensor]:
    return synthesize_video(n, generator, labels, config)


def make_video_modality(config: VideoConfig | None = None) -> ModalitySpec:
    """The video modality with ``config`` bound (``partial``s, so specs pickle to workers).

    Raises:
        anymodal.ConfigError: an option is out of range.
    """
    config = validate_video_config(config or VideoConfig())
    return ModalitySpec(
        name="video",
        load=partial(_load, config=config),
        transform=partial(_transform, config=config),
        collate=collate_video,
        synthesize=partial(_synthesize, config=config),
        default_encoder="video_timesformer_tiny",
        num_classes=config.num_classes,
        config_cls=VideoConfig,
        configure=make_video_modality,
        description="video files (decord) as clips of sampled, cropped, normalised frames",
    )
