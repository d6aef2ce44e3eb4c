"""Opening real mp4 files (and bytes, and frame arrays); every bad input case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anymodal import DataError
from anymodal.testing import check_data_error
from anymodal_video.config import VideoConfig
from anymodal_video.io import load_video
from anymodal_video.synthetic import write_mp4
from anymodal_video.transforms import transform_video

CONFIG = VideoConfig(size=32, num_frames=4)


def test_an_mp4_opens_with_its_length_and_rate(videos: Path, frames: torch.Tensor) -> None:
    source = load_video(videos / "clip.mp4", CONFIG)
    assert source.num_frames == 30 and source.fps == pytest.approx(10.0)
    decoded = source.read([0, 29, 29])
    assert decoded.shape == (3, 60, 80, 3) and decoded.dtype == torch.uint8
    # H.264 is lossy; the decoded frame is close to what was written.
    assert (decoded[0].float() - frames[0].float()).abs().mean() < 8


def test_an_mp4_with_an_audio_track_opens_as_video(videos: Path) -> None:
    assert load_video(str(videos / "clip_audio.mp4"), CONFIG).num_frames == 30


def test_widths_decord_cannot_copy_are_decoded_through_a_rescale(
    tmp_path: Path, ffmpeg: str, frames: torch.Tensor
) -> None:
    """decord 0.6 fails on frames 48 px wide; the loader rescales instead of failing."""
    narrow = write_mp4(tmp_path / "narrow.mp4", frames[:4, :34, :48], 10.0)
    for source in (load_video(narrow, CONFIG), load_video(narrow.read_bytes(), CONFIG)):
        decoded = source.read([0, 3])
        assert decoded.shape == (2, 90, 128, 3)  # 34 x 48 scaled to a width of 128
        clip = transform_video(source, False, CONFIG)
        assert clip.shape == (4, 3, 32, 32) and torch.isfinite(clip).all()


def test_bytes_and_frame_arrays(videos: Path, frames: torch.Tensor) -> None:
    from_bytes = load_video((videos / "clip.mp4").read_bytes(), CONFIG)
    assert from_bytes.num_frames == 30
    assert torch.equal(from_bytes.read([5]), load_video(videos / "clip.mp4", CONFIG).read([5]))
    array = load_video(frames.numpy(), CONFIG)
    assert array.num_frames == 30 and array.fps == CONFIG.fps
    assert torch.equal(array.read([2, 3]), frames[[2, 3]])
    floats = load_video((frames.float() / 255, 25.0), CONFIG)
    assert floats.fps == 25.0 and floats.read([0]).dtype == torch.float32
    gray = load_video(torch.zeros(2, 8, 8, 1, dtype=torch.uint8), CONFIG)
    assert gray.read([0]).shape == (1, 8, 8, 3)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing.mp4", "file not found"),
        ("garbage.mp4", "cannot open the video (corrupt, truncated or not a video file)"),
        ("truncated.mp4", "cannot open the video (corrupt, truncated or not a video file)"),
        ("garbage.xyz", "cannot open the video"),
        ("audio_only.m4a", "has no video stream"),
        ("no_frames.mp4", "has no video stream"),
        ("a_folder.mp4", "is a directory"),
    ],
)
def test_bad_files_raise_a_data_error_naming_the_file(
    videos: Path, name: str, problem: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path = videos / name
    assert check_data_error(lambda: load_video(path, CONFIG), path, problem).source == path
    assert capfd.readouterr().err == "", "decord/FFmpeg printed to stderr"


def test_the_decoders_own_reason_is_kept(videos: Path) -> None:
    with pytest.raises(DataError, match="moov atom not found"):
        load_video(str(videos / "truncated.mp4"), CONFIG)


def test_bad_arrays_and_sources() -> None:
    nan = torch.rand(3, 8, 8, 3)
    nan[1, 2, 2, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        load_video(nan, CONFIG)
    with pytest.raises(DataError, match="no video frames"):
        load_video(np.zeros((0, 8, 8, 3), np.uint8), CONFIG)
    with pytest.raises(DataError, match=r"\[T, H, W, 3\]"):
        load_video(np.zeros((8, 8, 3), np.uint8), CONFIG)
    with pytest.raises(DataError, match="cannot open the video"):
        load_video(b"not a video" * 50, CONFIG)
    with pytest.raises(DataError, match="unsupported video source type"):
        load_video(3.0, CONFIG)
