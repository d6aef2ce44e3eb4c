"""Clips from real files: shapes, normalisation, determinism, augmentation, collate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymodal
from anymodal import ConfigError
from anymodal_video.collate import collate_video
from anymodal_video.config import VideoConfig
from anymodal_video.io import load_video
from anymodal_video.transforms import normalize, spatial_transform, transform_video

CONFIG = VideoConfig(size=32, num_frames=4)


def test_eval_clips_have_the_configured_shape_and_are_deterministic(videos: Path) -> None:
    clip = transform_video(load_video(videos / "clip.mp4", CONFIG), False, CONFIG)
    assert clip.shape == (4, 3, 32, 32) and clip.dtype == torch.float32
    again = transform_video(load_video(videos / "clip.mp4", CONFIG), False, CONFIG)
    assert torch.equal(clip, again)


def test_a_short_video_gives_a_full_clip(videos: Path) -> None:
    clip = transform_video(load_video(videos / "short.mp4", CONFIG),
                           False, VideoConfig(size=32, num_frames=8))
    assert clip.shape == (8, 3, 32, 32)


def test_train_clips_differ_but_keep_their_shape(videos: Path) -> None:
    source = load_video(videos / "clip.mp4", CONFIG)
    torch.manual_seed(0)
    clips = [transform_video(source, True, CONFIG) for _ in range(4)]
    assert all(c.shape == (4, 3, 32, 32) for c in clips)
    assert not all(torch.equal(clips[0], c) for c in clips[1:])


def test_short_side_resize_then_centre_crop() -> None:
    # A 40x80 frame whose left half is black, right half white: the short side goes to 36
    # (size 32 * 256/224 rounded up to 37? no: round(36.57) = 37), the centre crop straddles.
    frames = torch.zeros(1, 3, 40, 80, dtype=torch.uint8)
    frames[..., 40:] = 255
    out = spatial_transform(frames, False, CONFIG)
    assert out.shape == (1, 3, 32, 32)
    assert out[0, 0, :, :12].float().mean() < 10 and out[0, 0, :, -12:].float().mean() > 245
    assert CONFIG.resize_to == 37 and VideoConfig().resize_to == 256


def test_flip_and_random_crop_apply_to_every_frame_alike() -> None:
    gen = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8, generator=gen)
    frames = frame.expand(4, -1, -1, -1)
    config = VideoConfig(size=32, num_frames=4, short_side=48, max_scale=1.5)
    torch.manual_seed(1)
    for _ in range(5):
        out = spatial_transform(frames, True, config)
        assert out.shape == (4, 3, 32, 32)
        assert all(torch.equal(out[0], out[t]) for t in range(1, 4))


def test_flip_mirrors_the_frame() -> None:
    frames = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    frames[..., :8] = 255  # a bright band on the left
    config = VideoConfig(size=32, num_frames=1, short_side=32, train_crop="center")
    torch.manual_seed(0)
    lefts = {bool(spatial_transform(frames, True, config)[0, 0, 0, 0] == 255) for _ in range(20)}
    assert lefts == {True, False}


def test_normalisation_matches_the_configured_statistics() -> None:
    config = VideoConfig(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    frames = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(normalize(frames, config), torch.full((1, 3, 2, 2), 2.0))
    assert torch.allclose(normalize(torch.zeros(1, 3, 2, 2), config), torch.full((1, 3, 2, 2),
                                                                                 -2.0))


def test_collate_stacks_and_rejects_mixed_shapes() -> None:
    batch = collate_video([torch.zeros(4, 3, 8, 8), torch.ones(4, 3, 8, 8)])
    assert batch.shape == (2, 4, 3, 8, 8)
    with pytest.raises(ValueError, match="different shapes"):
        collate_video([torch.zeros(4, 3, 8, 8), torch.zeros(2, 3, 8, 8)])


def test_options_are_bound_and_checked() -> None:
    video = anymodal.get_modality("video", size=16, num_frames=2)
    (item,) = video.synthesize(1, torch.Generator().manual_seed(0))
    assert item.shape == (2, 3, 16, 16)
    with pytest.raises(ConfigError, match="sampling must be one of"):
        anymodal.get_modality("video", sampling="random")
    with pytest.raises(ConfigError, match="short_side must be 0"):
        anymodal.get_modality("video", size=64, short_side=32)
    with pytest.raises(ConfigError, match="num_frame"):
        anymodal.get_modality("video", num_frame=4)
