"""Real audio files for the audio plugin's tests, written once per session."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anymodal.testing import require_executable
from anymodal_audio.synthetic import write_audio

RATE = 16000


def _tone(seconds: float, rate: int = RATE, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """A sine, ``[N]`` or ``[C, N]`` (channel c at ``freq * (c + 1)``)."""
    t = np.arange(round(seconds * rate)) / rate
    waves = [0.5 * np.sin(2 * math.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.stack(waves).astype(np.float32) if channels > 1 else waves[0].astype(np.float32)


@pytest.fixture(scope="session")
def tone() -> Callable[..., np.ndarray]:
    """``tone(seconds, rate=16000, freq=440.0, channels=1)``: a sine wave."""
    return _tone


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return require_executable("ffmpeg", "mp3/mp4 files cannot be written (apt-get install "
                              "ffmpeg)")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of good and bad files soundfile can write (no FFmpeg needed)."""
    import soundfile

    root = tmp_path_factory.mktemp("audio_media")
    write_audio(root / "mono16k.wav", _tone(1.0), RATE)
    write_audio(root / "stereo44k.flac", _tone(1.5, 44100, channels=2), 44100)
    soundfile.write(str(root / "empty.wav"), np.zeros((0, 1), np.float32), RATE)
    nan = _tone(0.5)
    nan[100] = np.nan
    soundfile.write(str(root / "nan.wav"), nan, RATE, subtype="FLOAT")
    for name in ("mono16k.wav", "stereo44k.flac"):
        data = (root / name).read_bytes()
        (root / f"truncated_{name}").write_bytes(data[: len(data) // 2])
    (root / "garbage.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 20)
    (root / "garbage.xyz").write_bytes(b"hello, I am not audio at all" * 20)
    (root / "a_folder.wav").mkdir()
    return root


@pytest.fixture(scope="session")
def ffmpeg_media(media: Path, ffmpeg: str) -> Path:
    """Files only FFmpeg writes: mp3, mp4 with and without an audio track."""
    write_audio(media / "tone.mp3", _tone(1.0, 22050), 22050)
    write_audio(media / "with_audio.mp4", _tone(1.0, 44100, channels=2), 44100, with_video=True)
    data = (media / "tone.mp3").read_bytes()
    (media / "truncated_tone.mp3").write_bytes(data[: len(data) // 2])
    from anymodal_audio.synthetic import run_ffmpeg

    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "1", "-c:v",
                "libx264", "-pix_fmt", "yuv420p", str(media / "video_only.mp4")])
    data = (media / "with_audio.mp4").read_bytes()
    (media / "truncated_with_audio.mp4").write_bytes(data[: len(data) // 3])
    return media
