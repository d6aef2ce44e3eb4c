"""Synthetic labelled sounds."""

from __future__ import annotations

import torch

from anymodal_audio.config import AudioConfig
from anymodal_audio.synthetic import SOUND_KINDS, synth_waveform, synthesize_audio

CONFIG = AudioConfig(clip_seconds=1.0, n_mels=32)


def test_same_seed_same_items_and_varied_lengths() -> None:
    a = synthesize_audio(6, torch.Generator().manual_seed(4), config=CONFIG)
    b = synthesize_audio(6, torch.Generator().manual_seed(4), config=CONFIG)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert len({item.shape[0] for item in a}) > 1, "durations should vary (exercises masks)"
    assert all(item.shape[1] == 32 and torch.isfinite(item).all() for item in a)


def test_labels_pick_kind_and_pitch() -> None:
    gen = torch.Generator().manual_seed(0)
    rate = CONFIG.sample_rate
    peaks = []
    for label in (0, 3, 6):  # three tones at rising pitches
        wave = synth_waveform(label, gen, CONFIG)
        peaks.append(float(torch.fft.rfftfreq(wave.numel(), 1 / rate)[
            torch.fft.rfft(wave).abs().argmax()]))
    assert peaks[0] < peaks[1] < peaks[2]
    assert SOUND_KINDS[1] == "chirp" and SOUND_KINDS[2] == "noise_burst"
    labels = torch.tensor([1, 2, 13])  # 13 % 12 == 1
    items = synthesize_audio(3, torch.Generator().manual_seed(0), labels, CONFIG)
    assert len(items) == 3


def test_classes_are_separable_by_their_mean_spectrum() -> None:
    """A nearest-centroid classifier on mean log-mel tells the 12 classes apart."""
    labels = torch.arange(12).repeat(4)
    config = AudioConfig(clip_seconds=0.5, n_mels=32)
    items = synthesize_audio(48, torch.Generator().manual_seed(1), labels, config)
    feats = torch.stack([item.mean(0) for item in items])
    centroids = torch.stack([feats[labels == c][:2].mean(0) for c in range(12)])
    test = torch.cat([torch.nonzero(labels == c).flatten()[2:] for c in range(12)])
    predicted = torch.cdist(feats[test], centroids).argmin(1)
    assert (predicted == labels[test]).float().mean() >= 0.75
