"""Loading real audio files and the audio track of real video files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import anymodal
from anymodal import DataError
from anymodal.testing import check_data_error
from anymodal_audio.config import AudioConfig
from anymodal_audio.io import load_audio

CONFIG = AudioConfig()
RATE = 16000


def test_wav_at_the_target_rate_is_read_as_is(media: Path, tone: Callable) -> None:
    wave = load_audio(media / "mono16k.wav", CONFIG)
    assert wave.shape == (RATE,) and wave.dtype == torch.float32
    np.testing.assert_allclose(wave.numpy(), tone(1.0), atol=1e-4)  # PCM_16 rounding


def test_stereo_flac_is_mixed_to_mono_and_resampled(media: Path) -> None:
    wave = load_audio(str(media / "stereo44k.flac"), CONFIG)
    assert wave.shape == (round(1.5 * RATE),)
    # The mean of a 440 Hz and an 880 Hz sine, resampled: peak near 0.5 * (|a| + |b|) / 2 * 2.
    spectrum = torch.fft.rfft(wave).abs()
    freqs = torch.fft.rfftfreq(wave.numel(), 1 / RATE)
    top2 = sorted(freqs[spectrum.topk(2).indices].round().tolist())
    assert top2 == [440.0, 880.0]


def test_other_rates_follow_the_config(media: Path) -> None:
    wave = load_audio(media / "mono16k.wav", AudioConfig(sample_rate=8000))
    assert wave.shape == (8000,)


def test_mp3_written_by_ffmpeg(ffmpeg_media: Path) -> None:
    wave = load_audio(ffmpeg_media / "tone.mp3", CONFIG)
    # MP3 adds encoder delay/padding: about one second, not exactly.
    assert abs(wave.numel() - RATE) < 0.1 * RATE
    assert 0.3 < wave.abs().max() < 0.7


def test_audio_track_of_an_mp4(ffmpeg_media: Path) -> None:
    wave = load_audio(ffmpeg_media / "with_audio.mp4", CONFIG)
    assert abs(wave.numel() - RATE) < 0.1 * RATE
    spectrum = torch.fft.rfft(wave).abs()
    freqs = torch.fft.rfftfreq(wave.numel(), 1 / RATE)
    assert abs(float(freqs[spectrum.argmax()]) - 440.0) < 5 or abs(
        float(freqs[spectrum.argmax()]) - 880.0) < 5


def test_bytes_of_a_flac_and_of_an_mp4(ffmpeg_media: Path) -> None:
    from_bytes = load_audio((ffmpeg_media / "stereo44k.flac").read_bytes(), CONFIG)
    torch.testing.assert_close(from_bytes, load_audio(ffmpeg_media / "stereo44k.flac", CONFIG))
    # Not a libsndfile format: the bytes go to FFmpeg.
    mp4 = load_audio((ffmpeg_media / "with_audio.mp4").read_bytes(), CONFIG)
    assert abs(mp4.numel() - RATE) < 0.1 * RATE


def test_arrays_tensors_and_rate_tuples(tone: Callable) -> None:
    samples = tone(0.5)
    torch.testing.assert_close(load_audio(samples, CONFIG), torch.from_numpy(samples))
    stereo = torch.from_numpy(tone(0.5, channels=2))
    torch.testing.assert_close(load_audio(stereo, CONFIG), stereo.mean(0))
    assert load_audio((tone(0.5, 32000), 32000), CONFIG).shape == (8000,)


@pytest.mark.parametrize(
    ("folder", "name", "problem"),
    [
        ("media", "missing.wav", "file not found"),
        ("media", "garbage.wav", "corrupt or not a wav file"),
        ("media", "truncated_mono16k.wav", "truncated"),
        ("media", "truncated_stereo44k.flac", "corrupt or truncated"),
        ("media", "empty.wav", "no audio samples"),
        ("media", "garbage.xyz", "unknown or unsupported audio format '.xyz'"),
        ("media", "nan.wav", "NaN"),
        ("media", "a_folder.wav", "is a directory"),
        # files only FFmpeg writes (the test is skipped without it)
        ("ffmpeg_media", "truncated_tone.mp3", "truncated"),
        ("ffmpeg_media", "video_only.mp4", "has no audio stream"),
        ("ffmpeg_media", "truncated_with_audio.mp4", "cannot decode the audio track"),
    ],
)
def test_bad_files_raise_a_data_error_naming_the_file(
    request: pytest.FixtureRequest, folder: str, name: str, problem: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = request.getfixturevalue(folder) / name
    assert check_data_error(lambda: load_audio(path, CONFIG), path, problem).source == path
    assert capfd.readouterr().err == "", "native decoders (soundfile, decord) printed to stderr"


def test_bad_arrays_and_bytes() -> None:
    with pytest.raises(DataError, match="NaN"):
        load_audio(np.array([0.0, np.nan, 0.1], np.float32), CONFIG)
    with pytest.raises(DataError, match="no audio samples"):
        load_audio(np.zeros(0, np.float32), CONFIG)
    with pytest.raises(DataError, match=r"shape \[N\] or \[C, N\]"):
        load_audio(np.zeros((2, 2, 2), np.float32), CONFIG)
    with pytest.raises(DataError, match="unknown or unsupported audio format"):
        load_audio(b"definitely not audio" * 10, CONFIG)
    with pytest.raises(DataError, match="unsupported audio source type"):
        load_audio(12.5, CONFIG)


def test_the_registered_modality_loads_through_the_same_path(media: Path) -> None:
    audio = anymodal.get_modality("audio")
    torch.testing.assert_close(audio.load(media / "mono16k.wav"),
                               load_audio(media / "mono16k.wav", CONFIG))
