"""The audio's cached prefix (features of the whole waveform) gives the same items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import anymodal
import anymodal_audio.io as audio_io
from anymodal.testing import check_prepared
from anymodal_audio.config import AudioConfig
from anymodal_audio.io import SeekableAudio
from anymodal_audio.transforms import AudioFeatures, crop_starts, prepare_audio


def _wave(seconds: float, rate: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return 0.1 * torch.randn(round(seconds * rate), generator=generator)


@pytest.mark.parametrize("features", ["fbank", "melspec"])
@pytest.mark.parametrize("seconds", [0.01, 0.3, 1.0, 1.37, 3.21])
@pytest.mark.parametrize("eval_clips", [1, 3])
def test_prepared_features_give_the_same_items(features: str, seconds: float,
                                               eval_clips: int) -> None:
    spec = anymodal.get_modality("audio", clip_seconds=1.0, n_mels=32, features=features,
                                 eval_clips=eval_clips, sample_rate=22050, pad_to_clip=True)
    wave = _wave(seconds, 22050)
    prepared = check_prepared(spec, wave)
    assert isinstance(prepared, AudioFeatures) and prepared.num_samples == wave.numel()


def test_crops_start_on_the_frame_grid_and_cover_every_frame() -> None:
    config = AudioConfig(clip_seconds=1.0, n_mels=32)
    length = 3 * 16000 + 77
    torch.manual_seed(0)
    starts = [s for _ in range(200) for s in crop_starts(length, True, config)]
    assert all(s is not None and s % config.hop_samples == 0 for s in starts)
    last = max(s for s in starts if s is not None)
    # the last possible window still holds a whole clip's frames
    wave = _wave(length / 16000, 16000)
    assert prepare_audio(wave, config).features[last // 160:].shape[0] >= 98
    assert crop_starts(16000, True, config) == [None]  # one clip or less: all of it


def test_a_processor_or_a_long_file_is_not_prepared(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    wave = _wave(1.0, 16000)
    assert prepare_audio(wave, AudioConfig(processor="some/model")) is wave
    path = tmp_path / "long.wav"
    soundfile.write(path, np.zeros(16000 * 3, dtype=np.float32), 16000)
    monkeypatch.setattr(audio_io, "EAGER_SECONDS", 1.0)
    config = AudioConfig()
    lazy = audio_io.load_audio(str(path), config)
    # a file too long to featurise whole stays a lazy reader (the cache does not keep it)
    assert isinstance(lazy, SeekableAudio) and prepare_audio(lazy, config) is lazy


@pytest.mark.parametrize(("rate", "target"), [(44100, 16000), (22050, 16000), (8000, 16000)])
def test_the_kept_resampler_equals_torchaudio_resample(rate: int, target: int) -> None:
    import torchaudio.functional as AF

    wave = _wave(1.5, rate)
    config = AudioConfig(sample_rate=target)
    loaded = audio_io.load_audio((wave[None], rate), config)
    assert torch.equal(loaded, AF.resample(wave, rate, target))


def test_finite_samples_whose_sum_overflows_still_load() -> None:
    # the one-pass check (a finite sum) falls back to the exact one when the sum overflows
    loud = torch.full((1, 1000), 3e38)
    assert torch.isfinite(audio_io.load_audio((loud, 16000), AudioConfig())).all()
    with pytest.raises(anymodal.DataError, match="1 NaN or infinite"):
        audio_io.load_audio((torch.tensor([[0.0, float("nan"), 1.0]]), 16000), AudioConfig())
