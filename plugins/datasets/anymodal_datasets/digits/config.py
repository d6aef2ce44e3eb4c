"""Options of the ``digits`` builder.

This module imports nothing heavy: the plugin manager reads it while listing plugins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from anymodal import ConfigError

__all__ = [
    "AUDIO_LANGUAGES",
    "FORMAT_VERSION",
    "MODALITIES",
    "NON_CONTENT_FIELDS",
    "NUM_SAMPLES",
    "TEXT_LANGUAGES",
    "DigitsConfig",
    "content_key",
    "output_key",
    "validate_digits_config",
]

MODALITIES = ("image", "audio", "video", "pointcloud", "graph", "text")
# Languages with number words (words.py) and an espeak-ng voice.
AUDIO_LANGUAGES = ("en", "de", "fr", "es")
TEXT_LANGUAGES = ("en", "de", "fr", "es")
NUM_SAMPLES = 1797  # sklearn.datasets.load_digits()
# Raised whenever the builder writes different bytes for the same options, so that files
# made by an older version are never mixed with new ones.
FORMAT_VERSION = 1

# Options that change no file: what is built (limit, modalities, missing) or how
# (workers, progress, overwrite). Everything else changes the bytes of some file.
_SELECTION_FIELDS = ("limit", "modalities", "missing")
_RUNTIME_FIELDS = ("workers", "progress", "overwrite")
NON_CONTENT_FIELDS = (*_SELECTION_FIELDS, *_RUNTIME_FIELDS)


@dataclass
class DigitsConfig:
    """Options of ``anymodal datasets build digits OUT_DIR``.

    Every random choice (voice, caption, motion, noise, split, dropped modalities) comes
    from a generator seeded with ``(seed, sample index, purpose)``, so a sample's files do
    not depend on ``limit``, ``modalities``, ``workers`` or the order the workers finish in.

    Args:
        limit: build only the first ``limit`` samples (``None``: all 1,797).
        modalities: the modalities to build, a subset of ``image, audio, video,
            pointcloud, graph, text``.
        missing: fraction of rows built with some modalities dropped (between one and all
            but one of the row's modalities; they are ``null`` in the manifest).
        seed: seed of every random choice except the split.
        split_seed: seed of the train/val/test split; each block of 10 consecutive samples
            gives 8 to train, 1 to val and 1 to test, so a sample's split never depends on
            ``limit`` or ``seed``.
        workers: processes that write the files (1: in this process).
        progress: show a progress bar.
        overwrite: rebuild an ``OUT_DIR`` that holds files made with other options
            (otherwise that is an error).
        image_size: side of the PNG images.
        video_size: side of the video frames (even, for yuv420p).
        video_frames: frames per video.
        video_fps: frame rate written in the mp4.
        num_points: points of each point cloud.
        thickness: range ``[min, max]`` of the extrusion depth, in units of the digit's
            half width (the digit spans ``[-1, 1]``).
        point_noise: std of the Gaussian noise added to every point coordinate.
        graph_k: neighbours of each ink pixel in the graph (the k-NN graph is made
            undirected).
        audio_languages: languages the number is spoken in (espeak-ng voices).
        text_languages: languages of the captions.
    """

    limit: int | None = None
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    missing: float = 0.0
    seed: int = 0
    split_seed: int = 0
    workers: int = 2
    progress: bool = True
    overwrite: bool = False
    image_size: int = 32
    video_size: int = 32
    video_frames: int = 8
    video_fps: int = 8
    num_points: int = 1024
    thickness: list[float] = field(default_factory=lambda: [0.1, 0.4])
    point_noise: float = 0.01
    graph_k: int = 4
    audio_languages: list[str] = field(default_factory=lambda: list(AUDIO_LANGUAGES))
    text_languages: list[str] = field(default_factory=lambda: list(TEXT_LANGUAGES))


def validate_digits_config(config: DigitsConfig) -> DigitsConfig:
    """Raise :class:`anymodal.ConfigError` naming every option out of range."""
    problems = []
    unknown = [m for m in config.modalities if m not in MODALITIES]
    if unknown:
        problems.append(f"unknown modality {', '.join(map(repr, unknown))}; valid choices: "
                        + ", ".join(MODALITIES))
    elif not config.modalities:
        problems.append("modalities is empty; valid choices: " + ", ".join(MODALITIES))
    if config.limit is not None and config.limit < 1:
        problems.append(f"limit={config.limit} must be >= 1 (or null for all)")
    if not 0.0 <= config.missing < 1.0:
        problems.append(f"missing={config.missing} must be in [0, 1)")
    if config.workers < 1:
        problems.append(f"workers={config.workers} must be >= 1")
    if config.image_size < 8:
        problems.append(f"image_size={config.image_size} must be >= 8")
    if config.video_size < 16 or config.video_size % 2:
        problems.append(f"video_size={config.video_size} must be even and >= 16 (yuv420p)")
    if not 2 <= config.video_frames <= 64:
        problems.append(f"video_frames={config.video_frames} must be in 2..64")
    if config.video_fps < 1:
        problems.append(f"video_fps={config.video_fps} must be >= 1")
    if config.num_points < 16:
        problems.append(f"num_points={config.num_points} must be >= 16")
    if len(config.thickness) != 2 or not 0 <= config.thickness[0] <= config.thickness[1]:
        problems.append(f"thickness={config.thickness} must be [min, max] with 0 <= min <= max")
    if config.point_noise < 0:
        problems.append(f"point_noise={config.point_noise} must be >= 0")
    if config.graph_k < 1:
        problems.append(f"graph_k={config.graph_k} must be >= 1")
    for key, allowed in (("audio_languages", AUDIO_LANGUAGES),
                         ("text_languages", TEXT_LANGUAGES)):
        values = getattr(config, key)
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            problems.append(f"{key}={values} must be a non-empty subset of "
                            + ", ".join(allowed))
    if problems:
        raise ConfigError("dataset 'digits': " + "; ".join(problems))
    return config


def _digest(values: dict[str, Any]) -> str:
    values = {**values, "format": FORMAT_VERSION}
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_key(config: DigitsConfig) -> str:
    """Hash of the options that decide the bytes of the files (not which files exist)."""
    values = dataclasses.asdict(config)
    for name in NON_CONTENT_FIELDS:
        values.pop(name)
    return _digest(values)


def output_key(config: DigitsConfig) -> str:
    """Hash of every option that decides the output (files and manifests)."""
    values = dataclasses.asdict(config)
    for name in _RUNTIME_FIELDS:
        values.pop(name)
    values["modalities"] = sorted(set(values["modalities"]))
    return _digest(values)
