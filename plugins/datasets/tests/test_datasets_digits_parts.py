"""Unit tests of the digits builder's parts: plans, splits, captions, voices, geometry."""

from __future__ import annotations

import dataclasses
import subprocess

import numpy as np
import pytest

from anymodal import ConfigError
from anymodal_datasets.digits.config import (
    DigitsConfig,
    content_key,
    output_key,
    validate_digits_config,
)
from anymodal_datasets.digits.media import (
    digit_image,
    graph_arrays,
    point_cloud,
    video_frames,
)
from anymodal_datasets.digits.plan import plan_sample, split_of
from anymodal_datasets.digits.words import (
    CAPTIONS,
    NUMBER_WORDS,
    VOICE_VARIANTS,
    VOICES,
    caption,
)

# A hand-drawn "7" on the 8x8 grid, ink 0..16 as in load_digits().
SEVEN = np.zeros((8, 8))
SEVEN[1, 1:7] = 16
SEVEN[2:7, 5] = 12
SEVEN[3, 4] = 6


def test_each_block_of_ten_has_one_val_and_one_test() -> None:
    splits = [split_of(i, 0) for i in range(1790)]
    for start in range(0, 1790, 10):
        block = splits[start:start + 10]
        assert (block.count("val"), block.count("test"), block.count("train")) == (1, 1, 8)
    assert splits != [split_of(i, 1) for i in range(1790)]  # split_seed reshuffles


def test_a_plan_depends_only_on_the_sample_and_the_content_options() -> None:
    base = DigitsConfig()
    plan = plan_sample(base, 42, 7)
    for other in (DigitsConfig(limit=50, workers=1), DigitsConfig(modalities=["audio"])):
        again = plan_sample(other, 42, 7)
        assert (again.speech, again.caption, again.motion, again.noise_seed) == \
            (plan.speech, plan.caption, plan.motion, plan.noise_seed)
    assert plan_sample(DigitsConfig(seed=1), 42, 7).speech != plan.speech
    assert plan_sample(DigitsConfig(seed=1), 42, 7).split == plan.split
    # choices vary over samples
    voices = {plan_sample(base, i, 7).speech.voice for i in range(100)}
    languages = {plan_sample(base, i, 7).caption_language for i in range(100)}
    assert len(voices) > 20 and languages == {"en", "de", "fr", "es"}


def test_missing_keeps_at_least_one_modality() -> None:
    config = DigitsConfig(missing=0.9)
    dropped = [plan_sample(config, i, i % 10) for i in range(300)]
    counts = [len(p.dropped) for p in dropped]
    assert all(len(p.modalities) >= 1 for p in dropped)
    assert set(counts) == {0, 1, 2, 3, 4, 5}
    assert 240 <= sum(c > 0 for c in counts) <= 299
    row = dropped[next(i for i, c in enumerate(counts) if c)].manifest_row()
    assert any(v is None for v in row.values())
    single = DigitsConfig(modalities=["image"], missing=0.9)
    assert all(plan_sample(single, i, 0).modalities == ("image",) for i in range(50))


@pytest.mark.parametrize("language", sorted(CAPTIONS))
def test_captions_name_the_digit_in_their_language(language: str) -> None:
    for label in range(10):
        texts = {caption(language, t, label) for t in range(len(CAPTIONS[language]))}
        assert len(texts) == len(CAPTIONS[language]) >= 3
        assert all(NUMBER_WORDS[language][label] in t.lower() for t in texts)
    assert caption("en", 0, 7) == "a handwritten seven"
    assert caption("de", 0, 7) == "die Ziffer sieben"


def test_every_voice_speaks(tmp_path: pytest.TempPathFactory) -> None:
    # espeak-ng falls back to a language prefix for an unknown name ("no-such" speaks
    # Norwegian), so check that every voice is listed by its exact name first.
    listing = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout
    names = {line.split()[1] for line in listing.splitlines()[1:] if line.strip()}
    assert {v for voices in VOICES.values() for v in voices} <= names
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True,
                             text=True).stdout
    variants = {line.split()[-1].rsplit("/", 1)[-1] for line in listing.splitlines()[1:]
                if line.strip()}
    assert set(VOICE_VARIANTS) <= variants
    for language, voices in VOICES.items():
        for voice in voices:
            out = tmp_path / f"{voice}.wav"
            done = subprocess.run(["espeak-ng", "-v", f"{voice}+f2", "-w", str(out), "--",
                                   NUMBER_WORDS[language][5]], capture_output=True)
            assert done.returncode == 0 and out.stat().st_size > 1000, done.stderr


def test_the_graph_is_an_undirected_knn_graph_of_the_ink() -> None:
    x, edge_index = graph_arrays(SEVEN, k=3)
    assert x.shape == (int((SEVEN > 0).sum()), 3) and x.dtype == np.float32
    assert x[:, 0].max() == 1.0 and np.abs(x[:, 1:]).max() <= 1.0
    edges = {tuple(e) for e in edge_index.T.tolist()}
    assert all((v, u) in edges for u, v in edges) and all(u != v for u, v in edges)
    degree = np.bincount(edge_index[0], minlength=len(x))
    assert degree.min() >= 3
    assert len(edges) == edge_index.shape[1]  # no duplicates


def test_the_point_cloud_lies_on_the_ink() -> None:
    plan = plan_sample(DigitsConfig(), 0, 7)
    points = point_cloud(SEVEN, plan, 500, noise=0.0)
    assert points.shape == (500, 3)
    assert np.abs(points[:, 2]).max() <= plan.thickness / 2
    # the top bar of the seven (row 1 of 8: y between 0.5 and 0.75) holds many points
    assert ((points[:, 1] > 0.45) & (points[:, 1] < 0.8)).mean() > 0.3
    assert np.array_equal(points, point_cloud(SEVEN, plan, 500, noise=0.0))


def test_video_frames_move() -> None:
    plan = plan_sample(DigitsConfig(), 3, 7)
    frames = video_frames(SEVEN, plan, size=32, frames=8)
    assert frames.shape == (8, 32, 32) and frames.dtype == np.uint8
    assert frames[0].min() < 128 and frames[0].max() == 255  # dark ink on white
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 1.0
    image = digit_image(SEVEN, 32)
    assert image.shape == (32, 32) and image.max() == 255 and image.min() < 64


def test_validation_and_cache_keys() -> None:
    with pytest.raises(ConfigError, match="video_size=33 must be even"):
        validate_digits_config(DigitsConfig(video_size=33))
    with pytest.raises(ConfigError, match=r"audio_languages.*subset of en, de, fr, es"):
        validate_digits_config(DigitsConfig(audio_languages=["xx"]))
    base = DigitsConfig()
    selection = dataclasses.replace(base, limit=5, modalities=["image"], missing=0.5)
    runtime = dataclasses.replace(base, workers=7, progress=False)
    assert content_key(selection) == content_key(base) != content_key(
        dataclasses.replace(base, seed=1))
    assert output_key(runtime) == output_key(base) != output_key(selection)
