"""The video's cached prefix (all frames, scaled) gives the same clips; frame sizes are
refused from the header; memory follows the clip, not the file (issue 14 item 4)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import anymodal
import anymodal_video.transforms as video_transforms
from anymodal import DataError
from anymodal.testing import check_prepared
from anymodal_video.config import VideoConfig
from anymodal_video.header import frame_size
from anymodal_video.io import VideoSource, load_video
from anymodal_video.transforms import VideoFrames

OPTIONS: list[dict[str, Any]] = [
    {"size": 32, "num_frames": 4},
    {"size": 32, "short_side": 32, "flip": False, "num_frames": 8},
    {"size": 24, "sampling": "fps", "fps": 5.0, "num_frames": 4},
    {"size": 32, "max_scale": 1.5, "num_frames": 4},  # drawn scale: frames kept unscaled
    {"size": 32, "num_frames": 4, "jitter": False},  # only the 4 sampled frames kept
    {"size": 24, "sampling": "fps", "fps": 5.0, "num_frames": 4, "jitter": False},
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("kind", ["mp4", "frames"])
def test_prepared_frames_give_the_same_clips(videos: Path, frames: torch.Tensor,
                                             options: dict[str, Any], kind: str) -> None:
    spec = anymodal.get_modality("video", **options)
    raw = spec.load(str(videos / "clip.mp4") if kind == "mp4" else frames.float() / 255)
    prepared = check_prepared(spec, raw)
    assert isinstance(prepared, VideoFrames) and prepared.total == 30
    assert prepared.frames.shape[0] == (30 if options.get("jitter", True) else 4)
    assert prepared.scaled == (options.get("max_scale", 1.0) == 1.0)


def test_a_video_too_large_to_hold_is_not_prepared(videos: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video_transforms, "PREPARE_MAX_BYTES", 10_000)
    spec = anymodal.get_modality("video", size=32, num_frames=4)
    raw = spec.load(str(videos / "clip.mp4"))
    assert raw.size == (80, 60)  # from the mp4 header
    decoded: list[list[int]] = []
    real_decode = raw.decode
    raw.decode = lambda indices: decoded.append(indices) or real_decode(indices)
    assert spec.prepare(raw) is raw  # served lazily: only the sampled frames are decoded
    assert decoded == []  # the size was known from the header: nothing decoded to decide
    raw.size = None  # a container without a declared size: one chunk decoded to decide
    assert spec.prepare(raw) is raw and len(decoded) == 1


def _lavfi(ffmpeg: str, out: Path, size: str, *args: str) -> Path:
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc=size={size}:rate=10", *args, str(out)], check=True)
    return out


def test_headers_declare_the_frame_size(videos: Path, ffmpeg: str, tmp_path: Path) -> None:
    assert frame_size(io.BytesIO((videos / "clip.mp4").read_bytes())) == (80, 60)
    with open(videos / "clip_audio.mp4", "rb") as handle:  # the audio track is not counted
        assert frame_size(handle) == (80, 60) and handle.tell() == 0
    mkv = _lavfi(ffmpeg, tmp_path / "a.mkv", "96x64", "-frames:v", "2", "-c:v", "mjpeg")
    webm = _lavfi(ffmpeg, tmp_path / "a.webm", "48x32", "-frames:v", "2", "-c:v", "libvpx")
    assert frame_size(open(mkv, "rb")) == (96, 64)
    assert frame_size(open(webm, "rb")) == (48, 32)
    assert frame_size(io.BytesIO(b"\x00\x00\x00\x18ftypmp42" + b"\xff" * 40)) is None
    assert frame_size(io.BytesIO(b"")) is None


def test_frames_over_max_pixels_are_refused_before_decoding(
        ffmpeg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = _lavfi(ffmpeg, tmp_path / "big.mkv", "4000x3000", "-frames:v", "1", "-c:v", "mjpeg",
                 "-q:v", "31")
    config = VideoConfig(max_pixels=10_000_000)
    import decord

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decord was reached")

    monkeypatch.setattr(decord, "VideoReader", no_decoding)
    for source in (str(big), big.read_bytes()):
        with pytest.raises(DataError, match=r"4000 x 3000 = 12,000,000 pixels.*max_pixels.*"
                                            r"refused before decoding"):
            load_video(source, config)


def test_without_a_header_size_the_first_frame_is_checked(ffmpeg: str, tmp_path: Path) -> None:
    avi = _lavfi(ffmpeg, tmp_path / "a.avi", "64x48", "-frames:v", "3", "-c:v", "mjpeg")
    assert frame_size(open(avi, "rb")) is None
    source = load_video(str(avi), VideoConfig(max_pixels=1000))
    with pytest.raises(DataError, match=r"64 x 48 = 3,072 pixels.*after decoding one frame"):
        source.read([0, 1, 2])
    assert load_video(str(avi), VideoConfig(max_pixels=0)).read([0, 2]).shape == (2, 48, 64, 3)
    with pytest.raises(anymodal.ConfigError, match="max_pixels"):
        anymodal.get_modality("video", max_pixels=-1)


_PEAK = """
import json, resource, sys, torch
import anymodal
import decord, torchvision.transforms.v2.functional  # imported before the measure
spec = anymodal.get_modality("video", size=32, num_frames=8)
peaks, frames = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss], []
for path in sys.argv[1:]:
    raw = spec.load(path)
    for train in (True, False, True):
        clip = spec.transform(raw, train)
    frames.append(raw.num_frames)
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"frames": frames, "peaks_kib": peaks}))
"""


@pytest.mark.slow
def test_memory_follows_the_clip_not_the_file(ffmpeg: str, tmp_path: Path) -> None:
    # 1,500 frames of 320 x 240: 345 MB decoded whole; a clip reads 8 of them.
    videos = [_lavfi(ffmpeg, tmp_path / f"{seconds}.mp4", "320x240", "-t", str(seconds),
                     "-c:v", "libx264", "-preset", "ultrafast", "-g", "50")
              for seconds in (2, 150)]
    done = subprocess.run([sys.executable, "-c", _PEAK, *map(str, videos)], check=True,
                          capture_output=True, text=True)
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["frames"] == [20, 1500]
    start, after_short, after_long = run["peaks_kib"]
    whole_kib = 1500 * 320 * 240 * 3 // 1024
    # Peak RSS: the short video's clips take ~25 MB (decoder buffers, first use); the long
    # one adds only its frame index (measured ~3 KB a frame), never its frames.
    assert after_short - start < whole_kib // 5, run
    assert after_long - after_short < whole_kib // 20, run


def test_load_opens_lazily(videos: Path) -> None:
    assert isinstance(load_video(str(videos / "clip.mp4"), VideoConfig()), VideoSource)
