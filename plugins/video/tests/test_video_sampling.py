"""Frame sampling: uniform segments (with TSN jitter) and fixed-rate windows."""

from __future__ import annotations

import math

import torch

from anymodal_video.config import VideoConfig
from anymodal_video.sampling import sample_indices

UNIFORM = VideoConfig(num_frames=4)
FPS = VideoConfig(num_frames=4, sampling="fps", fps=5.0)


def test_uniform_eval_takes_segment_centres() -> None:
    assert sample_indices(40, 25.0, False, UNIFORM) == [5, 15, 25, 35]


def test_uniform_train_jitters_within_each_segment() -> None:
    torch.manual_seed(0)
    draws = [sample_indices(40, 25.0, True, UNIFORM) for _ in range(50)]
    for draw in draws:
        assert [i // 10 for i in draw] == [0, 1, 2, 3]
    assert len({tuple(d) for d in draws}) > 1
    assert sample_indices(40, 25.0, True, VideoConfig(num_frames=4, jitter=False)) == [5, 15,
                                                                                      25, 35]


def test_a_video_shorter_than_the_clip_repeats_frames() -> None:
    indices = sample_indices(3, 25.0, False, VideoConfig(num_frames=8))
    assert len(indices) == 8 and sorted(indices) == indices and set(indices) == {0, 1, 2}
    torch.manual_seed(0)
    assert set(sample_indices(1, 25.0, True, VideoConfig(num_frames=8))) == {0}


def test_fps_sampling_steps_by_the_rate_ratio_from_the_centre() -> None:
    # 25 fps video, 5 fps clip: every 5th frame; the 16-frame window is centred in 100.
    assert sample_indices(100, 25.0, False, FPS) == [42, 47, 52, 57]
    torch.manual_seed(0)
    for _ in range(20):
        draw = sample_indices(100, 25.0, True, FPS)
        assert torch.tensor(draw).diff().tolist() == [5, 5, 5] and draw[-1] < 100


def test_fps_sampling_past_the_end_repeats_the_last_frame() -> None:
    assert sample_indices(8, 25.0, False, FPS) == [0, 5, 7, 7]


def test_fps_sampling_with_an_unknown_rate_takes_consecutive_frames() -> None:
    assert sample_indices(100, math.nan, False, FPS) == [48, 49, 50, 51]
