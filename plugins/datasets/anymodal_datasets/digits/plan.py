"""Every random choice of every sample, made before any file is written.

A plan depends only on the config and the sample's index: each choice draws from its own
generator seeded with ``(seed, index, purpose)``, so the same sample gets the same voice,
caption, motion and noise whatever ``limit``, ``modalities`` or ``workers`` are, and a
resumed build writes exactly what an uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import MODALITIES, DigitsConfig
from .words import NUMBER_WORDS, VOICE_VARIANTS, VOICES, caption

__all__ = ["EXTENSIONS", "SPLITS", "Motion", "SamplePlan", "Speech", "plan_sample", "split_of"]

EXTENSIONS = {"image": "png", "audio": "wav", "video": "mp4", "pointcloud": "ply",
              "graph": "pt"}
SPLITS = ("train", "val", "test")

# Purposes of the per-sample generators; never reorder (that would change every build).
_SPEECH, _CAPTION, _MOTION, _THICKNESS, _MISSING, _NOISE = range(6)
_SPLIT_PURPOSE = 99


@dataclass(frozen=True)
class Speech:
    """How the digit is spoken: ``espeak-ng -v {voice} -s {speed} -p {pitch} -a {amplitude}``."""

    language: str
    voice: str
    word: str
    speed: int
    pitch: int
    amplitude: int


@dataclass(frozen=True)
class Motion:
    """A video's motion: angle (degrees), scale and shift (fractions of the frame side).

    Each is interpolated linearly from the first frame's value to the last's.
    """

    angle: tuple[float, float]
    scale: tuple[float, float]
    shift_x: tuple[float, float]
    shift_y: tuple[float, float]


@dataclass(frozen=True)
class SamplePlan:
    """One sample: its identity, split, the modalities it has, and its random choices.

    Args:
        index: position in ``load_digits()``.
        sample_id: the row id, also the stem of its files.
        label: the digit, 0-9.
        split: ``train``, ``val`` or ``test``.
        modalities: the modalities this row has (missing ones removed).
        dropped: the requested modalities this row lacks (``missing``).
        noise_seed: seed of the per-point noise of its point cloud.
    """

    index: int
    sample_id: str
    label: int
    split: str
    modalities: tuple[str, ...]
    dropped: tuple[str, ...]
    speech: Speech
    caption: str
    caption_language: str
    motion: Motion
    thickness: float
    noise_seed: int

    def relpath(self, modality: str) -> str:
        """The file of ``modality``, relative to the output folder."""
        return f"{modality}/{self.sample_id}.{EXTENSIONS[modality]}"

    def file_modalities(self) -> tuple[str, ...]:
        """The modalities of this row that are files (text is inline)."""
        return tuple(m for m in self.modalities if m in EXTENSIONS)

    def manifest_row(self) -> dict[str, Any]:
        """The row of ``manifest.jsonl``.

        Sources relative to the manifest, ``null`` for a dropped modality, and what was
        chosen (language, voice) for analysis.
        """
        row: dict[str, Any] = {"id": self.sample_id, "label": self.label, "split": self.split}
        for modality in MODALITIES:
            if modality in self.modalities:
                row[modality] = self.caption if modality == "text" else self.relpath(modality)
            elif modality in self.dropped:
                row[modality] = None
        if "audio" in self.modalities:
            row["audio_language"] = self.speech.language
            row["audio_voice"] = self.speech.voice
        if "text" in self.modalities:
            row["text_language"] = self.caption_language
        return row


def _rng(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, purpose])


def split_of(index: int, split_seed: int) -> str:
    """The split of sample ``index``.

    In each block of 10 consecutive samples, a seeded permutation sends one to ``val``,
    one to ``test`` and eight to ``train``.

    Blocks keep the split fixed per sample and balanced within any prefix (``limit``);
    scikit-learn's digits cycle through the classes, so each split gets every class.
    """
    order = np.random.default_rng([split_seed, index // 10, _SPLIT_PURPOSE]).permutation(10)
    slot = int(np.flatnonzero(order == index % 10)[0])
    return "val" if slot == 0 else "test" if slot == 1 else "train"


def _speech(config: DigitsConfig, index: int, label: int) -> Speech:
    rng = _rng(config.seed, index, _SPEECH)
    language = str(rng.choice(config.audio_languages))
    voice = f"{rng.choice(VOICES[language])}+{rng.choice(VOICE_VARIANTS)}"
    return Speech(language, voice, NUMBER_WORDS[language][label], speed=int(rng.integers(120, 221)),
                  pitch=int(rng.integers(20, 81)), amplitude=int(rng.integers(70, 141)))


def _motion(config: DigitsConfig, index: int) -> Motion:
    rng = _rng(config.seed, index, _MOTION)
    start = float(rng.uniform(-25.0, 25.0))
    end = start + float(rng.uniform(-45.0, 45.0))
    scale = (float(rng.uniform(0.55, 0.8)), float(rng.uniform(0.75, 1.0)))
    if rng.random() < 0.5:  # shrinking as often as growing
        scale = scale[::-1]
    shifts = rng.uniform(-0.12, 0.12, size=4).tolist()
    return Motion((start, end), scale, (shifts[0], shifts[1]), (shifts[2], shifts[3]))


def _dropped(config: DigitsConfig, index: int, modalities: tuple[str, ...]) -> tuple[str, ...]:
    """The modalities a row loses: none, or between 1 and all but one (chosen uniformly)."""
    rng = _rng(config.seed, index, _MISSING)
    if len(modalities) < 2 or rng.random() >= config.missing:
        return ()
    count = int(rng.integers(1, len(modalities)))
    chosen = set(rng.choice(len(modalities), size=count, replace=False).tolist())
    return tuple(m for i, m in enumerate(modalities) if i in chosen)


def plan_sample(config: DigitsConfig, index: int, label: int) -> SamplePlan:
    """Every choice for sample ``index`` (of class ``label``) under ``config``."""
    requested = tuple(m for m in MODALITIES if m in config.modalities)
    dropped = _dropped(config, index, requested)
    rng = _rng(config.seed, index, _CAPTION)
    language = str(rng.choice(config.text_languages))
    text = caption(language, int(rng.integers(0, 1 << 16)), label)
    low, high = config.thickness
    thickness = float(_rng(config.seed, index, _THICKNESS).uniform(low, high))
    return SamplePlan(
        index=index, sample_id=f"digits-{index:04d}", label=label,
        split=split_of(index, config.split_seed),
        modalities=tuple(m for m in requested if m not in dropped), dropped=dropped,
        speech=_speech(config, index, label), caption=text, caption_language=language,
        motion=_motion(config, index), thickness=thickness,
        noise_seed=int(_rng(config.seed, index, _NOISE).integers(0, 2**31)),
    )
