"""Which frames of a video make a clip."""

from __future__ import annotations

import math

import torch

from anymodal_video.config import VideoConfig

__all__ = ["sample_indices"]


def sample_indices(total: int, fps: float, train: bool, config: VideoConfig) -> list[int]:
    """Indices of the ``config.num_frames`` frames of a clip of a ``total``-frame video.

    ``"uniform"`` splits the video into ``num_frames`` equal segments and takes the centre
    of each (a uniformly random frame of each in training with ``jitter``: TSN's sampling).
    ``"fps"`` takes frames ``fps / config.fps`` apart from a window at the centre of the
    video (at a random position in training). A video too short for the clip repeats
    frames: segments shorter than a frame share it, and ``"fps"`` windows past the end
    repeat the last frame.

    Args:
        total: frames in the video (> 0).
        fps: the video's frame rate (nan: unknown, then frames are taken consecutively).
        train: random offsets (global torch RNG) when ``config.jitter``.
        config: the modality's options.
    """
    count = config.num_frames
    random = train and config.jitter
    if config.sampling == "uniform":
        offsets = torch.rand(count, dtype=torch.float64) if random else torch.full(
            (count,), 0.5, dtype=torch.float64)
        positions = (torch.arange(count, dtype=torch.float64) + offsets) * (total / count)
    else:
        step = fps / config.fps if math.isfinite(fps) and fps > 0 else 1.0
        span = step * (count - 1) + 1
        slack = max(total - span, 0.0)
        start = float(torch.rand((), dtype=torch.float64)) * slack if random else slack / 2
        positions = start + step * torch.arange(count, dtype=torch.float64)
    return positions.floor().long().clamp(0, total - 1).tolist()
