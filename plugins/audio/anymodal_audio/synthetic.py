"""Labelled synthetic audio (tones, chirps, noise bursts), and writing real audio files.

``synthesize_audio`` is the modality's ``synthesize``: class ``c`` is a sound kind
(``c % 3``: tone, chirp, noise burst) at a pitch (``c // 3``), with a random duration,
phase, detune, level and background noise drawn from the caller's generator.
``write_audio`` writes a waveform as a real file (soundfile for wav/flac/ogg, FFmpeg for
mp3, m4a, mp4...), for tests and examples.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from anymodal.authoring import synthetic_labels
from anymodal_audio.config import AudioConfig
from anymodal_audio.transforms import transform_audio

__all__ = ["SOUND_KINDS", "run_ffmpeg", "synth_waveform", "synthesize_audio", "write_audio"]

SOUND_KINDS = ("tone", "chirp", "noise_burst")


def synthesize_audio(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                     config: AudioConfig | None = None) -> list[torch.Tensor]:
    """``n`` eval-mode items (log-mel features) of labelled synthetic sounds.

    Durations vary between half a clip and a full clip, so batches exercise the mask.

    Args:
        n: number of items.
        generator: the source of every random choice (same seed, same items).
        labels: ``LongTensor[n]``; item ``i`` is of class ``labels[i] % num_classes``.
        config: the modality's options (defaults to :class:`AudioConfig`).
    """
    config = config or AudioConfig()
    return [transform_audio(synth_waveform(label, generator, config), train=False, config=config)
            for label in synthetic_labels(n, generator, labels, config.num_classes)]


def synth_waveform(label: int, generator: torch.Generator, config: AudioConfig) -> torch.Tensor:
    """One synthetic waveform of class ``label``.

    Shapes:
        output: ``[N]`` with ``N`` between half a clip and a clip at ``config.sample_rate``.
    """
    rate = config.sample_rate
    kind = SOUND_KINDS[label % len(SOUND_KINDS)]
    freq = _pitch(label // len(SOUND_KINDS), config)
    freq *= 1.0 + 0.03 * (2 * _uniform(generator) - 1)  # detune within a class
    seconds = config.clip_seconds * (0.5 + 0.5 * _uniform(generator))
    num = max(round(seconds * rate), config.window_samples)
    t = torch.arange(num, dtype=torch.float64) / rate
    phase = 2 * math.pi * _uniform(generator)
    if kind == "tone":
        wave = torch.sin(2 * math.pi * freq * t + phase) + 0.3 * torch.sin(4 * math.pi * freq * t)
    elif kind == "chirp":  # exponential sweep from freq to 2*freq over the sound
        rate_k = math.log(2.0) / max(seconds, 1e-3)
        wave = torch.sin(2 * math.pi * freq * (torch.exp(rate_k * t) - 1) / rate_k + phase)
    else:
        wave = _band_noise(num, freq, rate, generator) * _bursts(t, generator)
    level = 0.2 + 0.4 * _uniform(generator)
    noise = 0.01 * torch.randn(num, generator=generator, dtype=torch.float64)
    return (level * wave / wave.abs().max().clamp_min(1e-6) + noise).float()


def _pitch(index: int, config: AudioConfig) -> float:
    """Log-spaced pitches from 150 Hz to 35 % of the sample rate."""
    pitches = max(math.ceil(config.num_classes / len(SOUND_KINDS)), 1)
    top = 0.35 * config.sample_rate
    return 150.0 * (top / 150.0) ** (index / max(pitches - 1, 1))


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def _band_noise(num: int, center: float, rate: int, generator: torch.Generator) -> torch.Tensor:
    spectrum = torch.fft.rfft(torch.randn(num, generator=generator, dtype=torch.float64))
    freqs = torch.fft.rfftfreq(num, d=1.0 / rate, dtype=torch.float64)
    spectrum[(freqs < center / 1.5) | (freqs > center * 1.5)] = 0
    return torch.fft.irfft(spectrum, n=num)


def _bursts(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """On/off envelope, 4 bursts a second with a random offset."""
    offset = _uniform(generator)
    return (torch.sin(2 * math.pi * (4.0 * t + offset)) > 0).double()


def write_audio(path: str | Path, waveform: torch.Tensor | np.ndarray, sample_rate: int,
                *, with_video: bool = False) -> Path:
    """Write ``waveform`` as a real file whose format follows the suffix of ``path``.

    wav, flac and ogg are written by soundfile; every other suffix (mp3, m4a, mp4, mkv...)
    by the ``ffmpeg`` executable. ``with_video`` adds a small black video stream (mp4/mkv),
    making a genuine video file with an audio track.

    Args:
        path: the file to write.
        waveform: ``[N]`` mono or ``[C, N]`` samples in [-1, 1].
        sample_rate: rate of ``waveform``.
        with_video: add a video stream (needs FFmpeg).

    Raises:
        RuntimeError: FFmpeg is needed but not installed, or it failed.
    """
    path = Path(path)
    samples = np.asarray(waveform, dtype=np.float32)
    samples = samples[None] if samples.ndim == 1 else samples
    if path.suffix.lower() in {".wav", ".flac", ".ogg"} and not with_video:
        import soundfile

        soundfile.write(str(path), samples.T, sample_rate)
        return path
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.wav"
        import soundfile

        soundfile.write(str(wav), samples.T, sample_rate, subtype="PCM_16")
        args = ["-i", str(wav)]
        if with_video:
            seconds = samples.shape[-1] / sample_rate
            args = ["-f", "lavfi", "-i", f"color=c=black:s=64x48:r=10:d={seconds:.3f}",
                    *args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest"]
        run_ffmpeg([*args, str(path)])
    return path


def run_ffmpeg(args: list[str]) -> None:
    """Run ``ffmpeg -y -loglevel error <args>``, raising RuntimeError with its stderr."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("the ffmpeg executable is not installed (apt-get install ffmpeg)")
    done = subprocess.run([exe, "-y", "-nostdin", "-loglevel", "error", *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
