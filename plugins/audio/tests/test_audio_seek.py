"""Long audio files are read span by span: memory follows the clip, not the file (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import anymodal
import anymodal_audio.io as audio_io
from anymodal_audio.io import SeekableAudio


@pytest.fixture
def long_wav(tmp_path: Path) -> Path:
    """70 s of a 48 kHz stereo chirp: longer than EAGER_SECONDS."""
    rate, seconds = 48000, 70
    t = np.arange(rate * seconds) / rate
    left = 0.5 * np.sin(2 * np.pi * (200 + 5 * t) * t)
    right = 0.3 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "long.wav"
    soundfile.write(path, np.stack([left, right], axis=1).astype(np.float32), rate,
                    subtype="PCM_16")
    return path


def test_a_long_file_decodes_only_the_clip(long_wav: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    # issue 14: a 1-hour 48 kHz WAV peaked at 5.4 GB to yield a 1 s clip.
    spec = anymodal.get_modality("audio", clip_seconds=1.0, n_mels=32, eval_clips=1)
    reads: list[int] = []
    real_read = soundfile.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", counting_read)
    raw = spec.load(str(long_wav))
    assert isinstance(raw, SeekableAudio) and raw.shape == (70 * 16000,)
    features = spec.transform(raw, False)
    assert reads and max(reads) < 2 * 48000  # about one second, never the whole 70 s
    assert features.shape[-1] == 32 and torch.isfinite(features).all()


def test_spans_equal_the_whole_decode(long_wav: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = anymodal.get_modality("audio").config
    lazy = audio_io.load_audio(str(long_wav), config)
    monkeypatch.setattr(audio_io, "EAGER_SECONDS", 1e9)
    whole = audio_io.load_audio(str(long_wav), config)
    assert isinstance(lazy, SeekableAudio) and torch.is_tensor(whole)
    assert lazy.shape[-1] == whole.shape[-1]
    for start in (0, 12345, 500_000, whole.shape[-1] - 16000):
        torch.testing.assert_close(lazy[start:start + 16000], whole[start:start + 16000],
                                   atol=1e-5, rtol=0)


def test_a_truncated_long_file_is_a_data_error(long_wav: Path) -> None:
    data = long_wav.read_bytes()
    long_wav.write_bytes(data[: len(data) * 9 // 10])  # 63 s left, the header declares 70 s
    config = anymodal.get_modality("audio").config
    with pytest.raises(anymodal.DataError, match=r"long\.wav: truncated"):
        audio_io.load_audio(str(long_wav), config)  # decoded whole: every check applies
