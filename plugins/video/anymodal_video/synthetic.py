"""Labelled synthetic clips (moving shapes), and writing real mp4 files with FFmpeg.

Class ``c`` is a shape (``c % 2``: square, disc) moving in a direction (``(c // 2) % 4``:
right, left, down, up) at a speed (``1 + c // 8``); colour, size, path offset, background
and noise come from the caller's generator. Telling classes apart needs motion, so
frame-averaging encoders cannot solve it from one frame alone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import torch

from anymodal.authoring import synthetic_labels
from anymodal_video.config import VideoConfig
from anymodal_video.transforms import apply_processor, normalize

__all__ = ["moving_shapes", "shapes_video_frames", "synthesize_video", "write_mp4"]

_DIRECTIONS = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))


def synthesize_video(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                     config: VideoConfig | None = None) -> list[torch.Tensor]:
    """``n`` eval-mode items ``[num_frames, 3, size, size]`` (normalised) of labelled clips.

    Args:
        n: number of items.
        generator: the source of every random choice (same seed, same items).
        labels: ``LongTensor[n]``; item ``i`` is of class ``labels[i] % num_classes``.
        config: the modality's options (defaults to :class:`VideoConfig`).
    """
    config = config or VideoConfig()
    clips = [moving_shapes(label, generator, config.num_frames, config.size, config.size)
             for label in synthetic_labels(n, generator, labels, config.num_classes)]
    if config.processor:  # the model's own processor reads uint8 frames, as from a file
        return [apply_processor((clip * 255).round().to(torch.uint8), False, config)
                for clip in clips]
    return [normalize(clip, config) for clip in clips]


def moving_shapes(label: int, generator: torch.Generator, num_frames: int, height: int,
                  width: int) -> torch.Tensor:
    """One clip of class ``label``: a coloured shape crossing a dark noisy background.

    Shapes:
        output: ``[num_frames, 3, height, width]``, float in [0, 1].
    """
    side = min(height, width)
    radius = side * (0.12 + 0.08 * _uniform(generator))
    dx, dy = _DIRECTIONS[(label // 2) % 4]
    travel = 0.4 * side * (1 + label // 8)
    progress = torch.linspace(-0.5, 0.5, num_frames) if num_frames > 1 else torch.zeros(1)
    offset = (torch.rand(2, generator=generator) - 0.5) * 0.2 * side
    cx = width / 2 + offset[0] + dx * travel * progress  # [T]
    cy = height / 2 + offset[1] + dy * travel * progress
    ys = (torch.arange(height) + 0.5)[None, :, None]
    xs = (torch.arange(width) + 0.5)[None, None, :]
    ddx, ddy = xs - cx[:, None, None], ys - cy[:, None, None]
    if label % 2 == 0:
        inside = (ddx.abs() <= radius) & (ddy.abs() <= radius)
    else:
        inside = ddx.square() + ddy.square() <= radius**2
    colour = 0.5 + 0.5 * torch.rand(3, generator=generator)
    background = 0.3 * torch.rand(3, generator=generator)
    frames = torch.where(inside[:, None], colour[None, :, None, None],
                         background[None, :, None, None])
    noise = 0.03 * torch.randn(frames.shape, generator=generator)
    return (frames + noise).clamp(0.0, 1.0)


def shapes_video_frames(label: int, generator: torch.Generator, num_frames: int, height: int,
                        width: int) -> torch.Tensor:
    """:func:`moving_shapes` as uint8 ``[T, H, W, 3]`` frames, ready for :func:`write_mp4`."""
    clip = moving_shapes(label, generator, num_frames, height, width)
    return (clip * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def write_mp4(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float = 10.0,
              audio: tuple[torch.Tensor | np.ndarray, int] | None = None) -> Path:
    """Encode ``frames`` as an H.264 mp4 (with an AAC audio track when ``audio`` is given).

    Args:
        path: the file to write (``.mp4``; FFmpeg picks the container from the suffix).
        frames: ``[T, H, W, 3]`` uint8, or float in [0, 1]. Odd sizes are padded to even.
        fps: frame rate.
        audio: ``(samples, sample_rate)``, samples ``[N]`` or ``[C, N]`` in [-1, 1].

    Raises:
        RuntimeError: the ``ffmpeg`` executable is missing or failed.
    """
    path = Path(path)
    array = np.asarray(frames.detach().cpu() if torch.is_tensor(frames) else frames)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"write_mp4 expects frames [T, H, W, 3], got {list(array.shape)}")
    _, height, width, _ = array.shape
    with tempfile.TemporaryDirectory() as tmp:
        args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                "-r", f"{fps}", "-i", "-"]
        if audio is not None:
            wav = Path(tmp) / "audio.wav"
            _write_wav(wav, audio[0], int(audio[1]))
            args += ["-i", str(wav), "-c:a", "aac"]
        args += ["-c:v", "libx264", "-pix_fmt", "yuv420p",
                 "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", str(path)]
        _run_ffmpeg(args, stdin=np.ascontiguousarray(array).tobytes())
    return path


def _write_wav(path: Path, samples: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV with the standard library (no soundfile dependency here)."""
    array = np.asarray(samples.detach().cpu() if torch.is_tensor(samples) else samples,
                       dtype=np.float32)
    array = array[None] if array.ndim == 1 else array
    pcm = (np.clip(array.T, -1.0, 1.0) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(array.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())


def _run_ffmpeg(args: list[str], stdin: bytes | None = None) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("the ffmpeg executable is not installed (apt-get install ffmpeg)")
    done = subprocess.run([exe, "-y", "-loglevel", "error", *args], input=stdin,
                          capture_output=True, check=False)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip()[-500:]
        raise RuntimeError(f"ffmpeg failed writing {args[-1]}: {message}")
