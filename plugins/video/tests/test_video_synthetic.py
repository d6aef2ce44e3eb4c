"""Synthetic moving-shape clips, and the mp4 writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anymodal_video.config import VideoConfig
from anymodal_video.io import load_video
from anymodal_video.synthetic import moving_shapes, synthesize_video, write_mp4

CONFIG = VideoConfig(size=32, num_frames=6)


def test_same_seed_same_clips() -> None:
    a = synthesize_video(3, torch.Generator().manual_seed(2), config=CONFIG)
    b = synthesize_video(3, torch.Generator().manual_seed(2), config=CONFIG)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (6, 3, 32, 32) and torch.isfinite(a[0]).all()


def _centre_of_brightness(clip: torch.Tensor) -> torch.Tensor:
    """``[T, 2]`` (x, y) centroid of the bright shape in each frame."""
    bright = (clip.mean(1) > 0.45).float()  # the shape is >= 0.5, the background <= 0.3 + noise
    ys, xs = torch.meshgrid(torch.arange(clip.shape[-2]), torch.arange(clip.shape[-1]),
                            indexing="ij")
    mass = bright.sum((1, 2)).clamp_min(1)
    return torch.stack([(bright * xs).sum((1, 2)) / mass, (bright * ys).sum((1, 2)) / mass], 1)


def test_labels_set_the_direction_of_motion() -> None:
    gen = torch.Generator().manual_seed(0)
    expected = {0: (1, 0), 2: (-1, 0), 4: (0, 1), 6: (0, -1)}  # right, left, down, up
    for label, (dx, dy) in expected.items():
        path = _centre_of_brightness(moving_shapes(label, gen, 6, 48, 48))
        motion = path[-1] - path[0]
        assert torch.sign(motion.round()).tolist() == [dx, dy], (label, motion)


def test_write_mp4_round_trips_through_decord(tmp_path: Path, ffmpeg: str) -> None:
    clip = moving_shapes(3, torch.Generator().manual_seed(0), 5, 59, 79)
    path = write_mp4(tmp_path / "x.mp4", clip.permute(0, 2, 3, 1), fps=5.0,  # float frames
                     audio=(np.zeros(8000, np.float32), 16000))
    source = load_video(path, CONFIG)
    assert source.num_frames == 5 and source.fps == 5.0
    decoded = source.read([0, 4])
    assert decoded.shape == (2, 60, 80, 3)  # odd sizes padded to even for H.264
    written = (clip[[0, 4]] * 255).permute(0, 2, 3, 1)
    assert (decoded[:, :59, :79].float() - written).abs().mean() < 8
