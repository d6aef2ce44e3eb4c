"""Real video files for the video plugin's tests, written once per session with FFmpeg."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from anymodal.testing import require_executable
from anymodal_video.synthetic import shapes_video_frames, write_mp4

FPS = 10.0


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return require_executable("ffmpeg", "mp4 files cannot be written (apt-get install ffmpeg)")


@pytest.fixture(scope="session")
def frames() -> torch.Tensor:
    """30 frames 60x80 (H x W) of a disc moving right, uint8 ``[T, H, W, 3]``."""
    return shapes_video_frames(1, torch.Generator().manual_seed(0), 30, 60, 80)


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str, frames: torch.Tensor) -> Path:
    root = tmp_path_factory.mktemp("video_media")
    write_mp4(root / "clip.mp4", frames, FPS)
    t = np.arange(3 * 16000) / 16000
    write_mp4(root / "clip_audio.mp4", frames, FPS,
              audio=(0.5 * np.sin(2 * math.pi * 440 * t), 16000))
    write_mp4(root / "short.mp4", frames[:3], FPS)
    data = (root / "clip.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (root / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else" * 10)
    (root / "garbage.xyz").write_bytes(b"not a video in any format" * 10)
    (root / "a_folder.mp4").mkdir()

    def run(*args: str) -> None:
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", *args], check=True)

    # An audio-only file: no video stream at all.
    run("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "1",
        str(root / "audio_only.m4a"))
    # An mp4 written with zero frames: FFmpeg leaves a container with no stream in it.
    run("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "0",
        "-c:v", "libx264", str(root / "no_frames.mp4"))
    return root
