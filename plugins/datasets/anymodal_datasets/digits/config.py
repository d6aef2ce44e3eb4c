"""Options of the ``digits`` builder.

This module imports nothing heavy: the plugin manager reads it while listing plugins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
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


# (option, whether its value is in range, what it must be): checked by validate_digits_config.
_RANGES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("limit", lambda v: v is None or v >= 1, "must be >= 1 (or null for all)"),
    ("missing", lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    ("workers", lambda v: v >= 1, "must be >= 1"),
    ("image_size", lambda v: v >= 8, "must be >= 8"),
    ("video_size", lambda v: v >= 16 and v % 2 == 0, "must be even and >= 16 (yuv420p)"),
    ("video_frames", lambda v: 2 <= v <= 64, "must be in 2..64"),
    ("video_fps", lambda v: v >= 1, "must be >= 1"),
    ("num_points", lambda v: v >= 16, "must be >= 16"),
    ("thickness", lambda v: len(v) == 2 and 0 <= v[0] <= v[1],
     "must be [min, max] with 0 <= min <= max"),
    ("point_noise", lambda v: v >= 0, "must be >= 0"),
    ("graph_k", lambda v: v >= 1, "must be >= 1"),
)


def _modality_problems(config: DigitsConfig) -> list[str]:
    unknown = [m for m in config.modalities if m not in MODALITIES]
    if unknown:
        return [f"unknown modality {', '.join(map(repr, unknown))}; valid choices: "
                + ", ".join(MODALITIES)]
    if not config.modalities:
        return ["modalities is empty; valid choices: " + ", ".join(MODALITIES)]
    return []


def validate_digits_config(config: DigitsConfig) -> DigitsConfig:
    """Raise :class:`anymodal.ConfigError` naming every option out of range."""
    problems = _modality_problems(config)
    problems += [f"{name}={getattr(config, name)} {rule}"
                 for name, ok, rule in _RANGES if not ok(getattr(config, name))]
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
