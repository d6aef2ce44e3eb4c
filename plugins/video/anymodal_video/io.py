"""Opening videos: files and bytes through ``decord.VideoReader``, or frame arrays.

``load`` opens the video and checks it (a missing file, a corrupt or truncated one, no
video stream, no frames: each an :class:`anymodal.DataError` naming the source), and
returns a :class:`VideoSource`. Frames are decoded later, by ``transform``, because which
frames to decode depends on ``train`` (random segment jitter).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymodal import DataError, capture_native_stderr, strip_native_prefix
from anymodal.utils.native import decoder_error
from anymodal_video.config import VideoConfig

__all__ = ["VideoSource", "load_video"]


@dataclass
class VideoSource:
    """An opened video: its length, rate, and a way to decode chosen frames.

    Args:
        name: the source, as error messages name it.
        num_frames: frames in the video (> 0).
        fps: its average frame rate (nan when unknown).
        decode: ``decode(indices) -> Tensor[k, H, W, 3]`` (uint8, or float in [0, 1]).
        size: ``(width, height)`` of a frame when known without decoding (the container
            header, a frame array), else ``None``.
    """

    name: Any
    num_frames: int
    fps: float
    decode: Callable[[list[int]], torch.Tensor]
    size: tuple[int, int] | None = None

    def read(self, indices: list[int]) -> torch.Tensor:
        """Decode frames ``indices`` (repeats allowed), checked for NaN.

        Shapes:
            output: ``[len(indices), H, W, 3]``.
        """
        frames = self.decode(indices)
        if frames.is_floating_point() and not torch.isfinite(frames).all():
            raise DataError(self.name, "decoded frames contain NaN or infinite values")
        return frames

def load_video(source: Any, config: VideoConfig) -> VideoSource:
    """Open ``source`` as a video.

    Args:
        source: a path (``str``/``Path``); encoded bytes; a frame array/tensor
            ``[T, H, W, 3]`` (uint8, or float in [0, 1]) taken to be at ``config.fps``; or a
            tuple ``(frames, fps)``.
        config: the modality's options.

    Raises:
        DataError: missing, corrupt/truncated, no video stream, no frames, NaN frames,
            unsupported source; the message names the source.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise DataError(path, "file not found")
        if path.is_dir():
            raise DataError(path, "is a directory, expected a video file")
        return _open_with_decord(str(path), path, config)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _open_with_decord(io.BytesIO(data), f"<{len(data)} bytes of video>", config)
    if isinstance(source, tuple) and len(source) == 2:
        return _from_frames(source[0], float(source[1]), "<video frames>")
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return _from_frames(source, config.fps, "<video frames>")
    raise DataError(type(source).__name__, "unsupported video source type; expected a path, "
                    "bytes, a [T, H, W, 3] frame array or (frames, fps)")


def _check_pixels(width: int, height: int, name: Any, config: VideoConfig, when: str) -> None:
    """Refuse frames over ``config.max_pixels``."""
    if config.max_pixels and width * height > config.max_pixels:
        raise DataError(name, f"has frames of {width} x {height} = {width * height:,} pixels, "
                        f"over the limit of {config.max_pixels:,} (the modality's max_pixels "
                        f"option); refused {when}")


def _header_size(file: Any) -> tuple[int, int] | None:
    """The frame size its container header declares (nothing decoded), if it says."""
    from anymodal_video.header import frame_size

    if isinstance(file, io.BytesIO):
        return frame_size(file)
    try:
        with open(file, "rb") as handle:
            return frame_size(handle)
    except OSError:
        return None  # decord reports the problem


def _open_with_decord(file: Any, name: Any, config: VideoConfig) -> VideoSource:
    """Open with decord; ``file`` is a path string or a BytesIO (re-read on a reopen)."""
    import decord

    declared = _header_size(file)
    if declared is not None and config.max_pixels:
        _check_pixels(*declared, name, config, "before decoding")

    def open_reader(**size: int) -> Any:
        if isinstance(file, io.BytesIO):
            file.seek(0)
        return decord.VideoReader(file, num_threads=config.decode_threads, **size)

    failure: Exception | None = None
    with capture_native_stderr() as err:
        try:
            reader = open_reader()
            total, fps = len(reader), float(reader.get_avg_fps())
        except Exception as exc:  # decord raises RuntimeError/DECORDError, details on fd 2
            failure = exc
    if failure is not None:
        raise _open_error(failure, err, name)
    if total <= 0:
        raise DataError(name, "has no video frames (empty stream)")

    def decode(indices: list[int]) -> torch.Tensor:
        nonlocal reader
        failed: Exception | None = None
        with capture_native_stderr() as decode_err, decord.bridge.use_torch():
            try:
                try:
                    return reader.get_batch(indices)
                except Exception as exc:
                    wrong = _WRONG_COPY_SIZE.search(str(exc))
                    if wrong is None:
                        raise
                    reader = _reopen_at_safe_width(open_reader, int(wrong.group(1)))
                    return reader.get_batch(indices)
            except Exception as exc:
                failed = exc
        reason = decode_err.reason() or strip_native_prefix(str(failed).splitlines()[-1])
        raise DataError(name, f"cannot decode frames {indices[:4]}...: {reason}")

    if declared is None and config.max_pixels:
        decode = _first_frame_checked(decode, name, config)
    return VideoSource(name, total, fps if math.isfinite(fps) and fps > 0 else math.nan,
                       decode, declared)


def _open_error(failure: Exception, err: Any, name: Any) -> DataError:
    """The :class:`DataError` of a video decord could not open."""
    return decoder_error(failure, err, name, "video",
                         "cannot open the video (corrupt, truncated or not a video file)")


def _first_frame_checked(decode: Callable[[list[int]], torch.Tensor], name: Any,
                         config: VideoConfig) -> Callable[[list[int]], torch.Tensor]:
    """``decode`` that first decodes one frame and checks its size (no size in the header)."""
    checked = False

    def checked_decode(indices: list[int]) -> torch.Tensor:
        nonlocal checked
        if not checked:
            first = decode(indices[:1])
            _check_pixels(first.shape[2], first.shape[1], name, config,
                          "after decoding one frame (its container header declares no size)")
            checked = True
        return decode(indices)

    return checked_decode


# decord 0.6 fails to copy out frames of a few narrow widths (8, 16, 24, 48, 72 px seen):
# "Check failed: from_size == to_size (6528 vs. 4896) DECORDArrayCopyFromTo".
_WRONG_COPY_SIZE = re.compile(r"to_size \((?:\d+) vs\. (\d+)\) DECORDArrayCopyFromTo")
_SAFE_WIDTH = 128


def _reopen_at_safe_width(open_reader: Callable[..., Any], frame_bytes: int) -> Any:
    """A reader that lets FFmpeg scale frames to a width decord copies correctly.

    Args:
        open_reader: ``open_reader(width=..., height=...)`` opens the same video again.
        frame_bytes: ``H * W * 3`` of one native frame (from decord's error message).
    """
    probe = open_reader(width=_SAFE_WIDTH, height=-1)  # keeps the native height
    height = int(probe[0].shape[0])
    width = max(frame_bytes // (3 * height), 1)
    scaled = max(2, round(height * _SAFE_WIDTH / width / 2) * 2)
    return open_reader(width=_SAFE_WIDTH, height=scaled)


def _from_frames(frames: Any, fps: float, name: str) -> VideoSource:
    try:
        tensor = torch.as_tensor(frames.detach().cpu() if torch.is_tensor(frames)
                                 else np.asarray(frames))
    except (TypeError, ValueError) as exc:
        raise DataError(name, f"cannot be read as video frames ({exc})") from None
    if tensor.dim() != 4 or tensor.shape[-1] not in (1, 3):
        raise DataError(name, f"expected frames [T, H, W, 3], got {list(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise DataError(name, "has no video frames (empty stream)")
    if tensor.dtype != torch.uint8:
        tensor = tensor.float()
        if not torch.isfinite(tensor).all():
            raise DataError(name, "frames contain NaN or infinite values")
    if tensor.shape[-1] == 1:
        tensor = tensor.expand(-1, -1, -1, 3)
    return VideoSource(name, tensor.shape[0], fps, lambda indices: tensor[indices],
                       (tensor.shape[2], tensor.shape[1]))
