"""Cropping, features, normalisation, SpecAugment and collate."""

from __future__ import annotations

import pytest
import torch

import anymodal
from anymodal import ConfigError
from anymodal_audio.collate import collate_audio
from anymodal_audio.config import AudioConfig
from anymodal_audio.transforms import (
    clip_frames,
    crop_clips,
    log_mel,
    num_frames,
    transform_audio,
)

SMALL = AudioConfig(clip_seconds=1.0, n_mels=32, eval_clips=3)


def noise(seconds: float, seed: int = 0, rate: int = 16000) -> torch.Tensor:
    return 0.1 * torch.randn(round(seconds * rate), generator=torch.Generator().manual_seed(seed))


def test_clip_frames_follow_the_kaldi_framing() -> None:
    # 25 ms window, 10 ms shift, no edge padding: 1 + (16000 - 400) // 160.
    assert clip_frames(SMALL) == 98
    assert clip_frames(AudioConfig()) == 198  # 2 s, the ImageBind clip
    assert log_mel(noise(1.0), SMALL).shape == (98, 32)


def test_eval_crops_the_centre_and_is_deterministic() -> None:
    wave = noise(1.6)
    config = AudioConfig(clip_seconds=1.0, n_mels=32, eval_clips=1)
    (clip,) = crop_clips(wave, train=False, config=config)
    start = (wave.numel() - 16000) // 2
    assert torch.equal(clip, wave[start:start + 16000])
    assert torch.equal(transform_audio(wave, False, config), transform_audio(wave, False, config))


def test_eval_clips_cover_the_audio_from_start_to_end() -> None:
    wave = noise(3.5)
    clips = crop_clips(wave, train=False, config=SMALL)
    assert len(clips) == 3
    assert torch.equal(clips[0], wave[:16000]) and torch.equal(clips[-1], wave[-16000:])
    assert transform_audio(wave, False, SMALL).shape == (3, 98, 32)


def test_train_takes_a_random_window_of_one_clip() -> None:
    wave = torch.arange(48000, dtype=torch.float32)
    torch.manual_seed(0)
    starts = {int(crop_clips(wave, True, SMALL)[0][0]) for _ in range(10)}
    assert len(starts) > 1 and all(0 <= s <= 32000 for s in starts)
    assert transform_audio(noise(3.0), True, SMALL).shape == (98, 32)


def test_short_audio_keeps_its_length_or_is_padded_to_a_clip() -> None:
    short = noise(0.4)
    assert transform_audio(short, False, SMALL).shape == (num_frames(6400, SMALL), 32)
    padded = transform_audio(short, False, AudioConfig(clip_seconds=1.0, n_mels=32,
                                                       pad_to_clip=True))
    assert padded.shape == (98, 32) and torch.all(padded[num_frames(6400, SMALL):] == 0)
    # Shorter than one 25 ms window: still one frame, never an empty item.
    assert transform_audio(noise(0.01), False, SMALL).shape == (1, 32)


def test_normalisation_uses_the_configured_statistics() -> None:
    wave = noise(1.0)
    raw = log_mel(wave, SMALL)
    config = AudioConfig(clip_seconds=1.0, n_mels=32, mean=1.5, std=2.0)
    torch.testing.assert_close(transform_audio(wave, False, config), (raw - 1.5) / 2.0)


def test_melspec_features_share_the_framing_and_scale_of_fbank() -> None:
    config = AudioConfig(clip_seconds=1.0, n_mels=32, features="melspec")
    wave = torch.sin(torch.arange(16000) / 16000 * 2 * torch.pi * 440) * 0.5
    mel = log_mel(wave, config)
    fbank = log_mel(wave, SMALL)
    assert mel.shape[1] == 32 and torch.isfinite(mel).all()
    assert abs(mel.shape[0] - fbank.shape[0]) <= 1
    # Same tone, same mel scale: the loudest bin agrees within one bin.
    assert abs(int(mel.mean(0).argmax()) - int(fbank.mean(0).argmax())) <= 1


def test_specaugment_masks_stripes_in_training_only() -> None:
    config = AudioConfig(clip_seconds=1.0, n_mels=32, freq_mask=8, time_mask=20,
                         num_freq_masks=2, num_time_masks=2)
    wave = noise(1.0)
    torch.manual_seed(3)
    augmented = torch.stack([transform_audio(wave, True, config) for _ in range(8)])
    zero_cols = (augmented == 0).all(dim=1).sum()   # masked mel bins
    zero_rows = (augmented == 0).all(dim=2).sum()   # masked frames
    assert zero_cols > 0 and zero_rows > 0
    assert not (transform_audio(wave, False, config) == 0).all(dim=0).any()


def test_collate_pads_and_masks() -> None:
    items = [torch.randn(5, 8), torch.randn(3, 8), torch.randn(7, 8)]
    batch = collate_audio(items)
    assert batch["features"].shape == (3, 7, 8) and "item_index" not in batch
    assert batch["mask"].sum(1).tolist() == [5, 3, 7]
    assert torch.equal(batch["features"][1, :3], items[1])
    assert torch.all(batch["features"][1, 3:] == 0)


def test_collate_flattens_eval_clips_with_an_item_index() -> None:
    batch = collate_audio([torch.randn(3, 6, 8), torch.randn(4, 8)])
    assert batch["features"].shape == (4, 6, 8)
    assert batch["item_index"].tolist() == [0, 0, 0, 1]
    assert batch["mask"].sum(1).tolist() == [6, 6, 6, 4]


def test_collate_rejects_mixed_mel_counts() -> None:
    with pytest.raises(ValueError, match="different mel bin counts"):
        collate_audio([torch.randn(4, 8), torch.randn(4, 16)])


def test_options_are_bound_and_checked() -> None:
    audio = anymodal.get_modality("audio", clip_seconds=0.5, n_mels=16)
    (item,) = audio.synthesize(1, torch.Generator().manual_seed(0))
    assert item.shape[1] == 16 and item.shape[0] <= clip_frames(AudioConfig(clip_seconds=0.5))
    with pytest.raises(ConfigError, match="features must be one of"):
        anymodal.get_modality("audio", features="mfcc")
    with pytest.raises(ConfigError, match="n_mel"):
        anymodal.get_modality("audio", n_mel=64)
    with pytest.raises(ConfigError, match="clip_seconds must be > 0"):
        anymodal.get_modality("audio", clip_seconds=0.0)
