"""From a :class:`VideoSource` to a normalised clip ``[T, 3, size, size]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from anymodal_video.config import VideoConfig
from anymodal_video.io import VideoSource
from anymodal_video.sampling import sample_indices

__all__ = ["PREPARE_MAX_BYTES", "VideoFrames", "apply_processor", "normalize", "prepare_video",
           "spatial_transform", "transform_video"]


# The prepared frames of one video are held whole (and stored whole by the sample cache):
# a video whose prepared frames would exceed this is not prepared (served uncached).
PREPARE_MAX_BYTES = 256 * 2**20
_PREPARE_CHUNK = 16  # frames decoded (and scaled) at a time while preparing


@dataclass
class VideoFrames:
    """The prepared form of a video: every frame decoded and scaled to the short side.

    What :func:`prepare_video` returns and the sample cache stores; frames are scaled only
    where that is deterministic.

    Args:
        frames: all frames of the video, channels first.
        fps: the video's frame rate (nan: unknown).
        scaled: the frames are already scaled to ``config.resize_to`` (False when training
            draws the scale, option ``max_scale``, or a ``processor`` prepares them).
        total: frames in the video (``0``: ``len(frames)``).
        kept: the video's frame indices that ``frames`` holds, when sampling can reach no
            other (``jitter: false``: training samples as evaluation does); ``None``: all.

    Shapes:
        frames: ``[N, 3, H, W]`` (uint8, or float in [0, 1]), ``N = len(kept)`` or ``total``.
    """

    frames: torch.Tensor
    fps: float
    scaled: bool
    total: int = 0
    kept: list[int] | None = None


def prepare_video(raw: Any, config: VideoConfig) -> Any:
    """The deterministic prefix of :func:`transform_video`: all frames, decoded and scaled.

    A video whose prepared frames would exceed ``PREPARE_MAX_BYTES`` is returned as it is
    (a lazy :class:`VideoSource`: the transform then decodes only the sampled frames).

    Shapes:
        output: :class:`VideoFrames` ``[N, 3, H', W']``, short side ``config.resize_to``.
    """
    if not isinstance(raw, VideoSource):
        return raw
    scale = not config.processor and config.max_scale == 1.0
    # without jitter, training and evaluation sample the same frames: keep only those
    kept = None if config.jitter else sorted(set(sample_indices(raw.num_frames, raw.fps,
                                                                False, config)))
    wanted = list(range(raw.num_frames)) if kept is None else kept
    if raw.size is not None and _prepared_bytes(
            len(wanted), raw.size, scale, config) > PREPARE_MAX_BYTES:
        return raw  # known from the header: nothing decoded
    chunks: list[torch.Tensor] = []
    for first in range(0, len(wanted), _PREPARE_CHUNK):
        chunk = raw.read(wanted[first:first + _PREPARE_CHUNK])
        chunk = chunk.permute(0, 3, 1, 2)  # as transform_video reads them
        chunks.append(_resize(chunk, config.resize_to) if scale else chunk.contiguous())
        per_frame = chunks[0][0].numel() * chunks[0].element_size()
        if per_frame * len(wanted) > PREPARE_MAX_BYTES:
            return raw
    return VideoFrames(torch.cat(chunks), raw.fps, scale, raw.num_frames, kept)


def _prepared_bytes(count: int, size: tuple[int, int], scale: bool,
                    config: VideoConfig) -> int:
    """Bytes of ``count`` prepared frames (uint8), from the frame ``size`` (w, h)."""
    width, height = size
    if scale:  # the short side becomes resize_to, the long side follows
        short, long = min(width, height), max(width, height)
        width, height = config.resize_to, max(1, int(long * config.resize_to / max(short, 1)))
    return count * 3 * width * height


def transform_video(source: Any, train: bool, config: VideoConfig) -> torch.Tensor:
    """Sample, decode and prepare one clip.

    Args:
        source: from ``load`` (a :class:`VideoSource`), or its :class:`VideoFrames` (from
            :func:`prepare_video`: the same item from the same random draws).
        train: frame jitter, scale jitter, random crop and flip when True.
        config: the modality's options.

    Shapes:
        output: ``[num_frames, 3, size, size]``, float32, normalised (with the option
        ``processor``: the model's ``pixel_values`` of the sampled frames).
    """
    scaled = False
    if isinstance(source, VideoFrames):
        indices = sample_indices(source.total or source.frames.shape[0], source.fps, train,
                                 config)
        if source.kept is not None:
            row = {index: position for position, index in enumerate(source.kept)}
            indices = [row[index] for index in indices]
        frames, scaled = source.frames[indices], source.scaled
    else:
        indices = sample_indices(source.num_frames, source.fps, train, config)
        frames = source.read(indices).permute(0, 3, 1, 2)  # [T, H, W, C] -> [T, C, H, W]
    if config.processor:
        return apply_processor(frames, train, config)
    return normalize(spatial_transform(frames, train, config, scaled), config)


_PROCESSORS: dict[str, Any] = {}


def apply_processor(frames: torch.Tensor, train: bool, config: VideoConfig) -> torch.Tensor:
    """The model's own processor (``config.processor``) on the sampled frames.

    Shapes:
        frames: ``uint8 [T, 3, H, W]``; output: the model's ``pixel_values`` ``[T, 3, h, w]``.
    """
    if config.processor not in _PROCESSORS:
        from anymodal.towers import load_hf

        _PROCESSORS[config.processor] = load_hf(config.processor, "AutoImageProcessor",
                                                "modality 'video' (option processor)")
    if train and config.flip and float(torch.rand(())) < 0.5:
        frames = frames.flip(-1)
    out = _PROCESSORS[config.processor](list(frames), return_tensors="pt")["pixel_values"]
    return out[0].float()


def _resize(frames: torch.Tensor, short: int) -> torch.Tensor:
    """Scale the short side to ``short`` (antialiased; the same per frame in any batch)."""
    import torchvision.transforms.v2.functional as TF

    return TF.resize(frames, [short], antialias=True)


def spatial_transform(frames: torch.Tensor, train: bool, config: VideoConfig,
                      scaled: bool = False) -> torch.Tensor:
    """Scale the short side, crop a square, maybe flip; the same for every frame of a clip.

    Frames stay uint8 while they are resized (cheaper, and how decoders deliver them).

    Args:
        frames: the sampled frames.
        train: scale jitter, random crop and flip.
        config: the modality's options.
        scaled: the frames are already scaled to ``config.resize_to``
            (:func:`prepare_video`).

    Shapes:
        frames: ``[T, C, H, W]``; output: ``[T, C, size, size]``.
    """
    import torchvision.transforms.v2.functional as TF

    short = config.resize_to
    if train and config.max_scale > 1.0:
        top = round(short * config.max_scale)
        short = int(torch.randint(short, top + 1, ()).item())
    if not scaled:
        frames = _resize(frames, short)
    height, width = frames.shape[-2:]
    size = config.size
    if train and config.train_crop == "random":
        top = int(torch.randint(0, height - size + 1, ()).item())
        left = int(torch.randint(0, width - size + 1, ()).item())
        frames = TF.crop(frames, top, left, size, size)
    else:
        frames = TF.center_crop(frames, [size, size])
    if train and config.flip and bool(torch.rand(()) < 0.5):
        frames = TF.horizontal_flip(frames)
    return frames


def normalize(frames: torch.Tensor, config: VideoConfig) -> torch.Tensor:
    """uint8 (0..255) or float (0..1) frames to ``(x - mean) / std`` per channel.

    Shapes:
        frames: ``[..., 3, H, W]``; output: same, float32.
    """
    # one float copy, then in place: the same arithmetic as (x / 255 - mean) / std, bit for
    # bit, without two more [T, 3, H, W] temporaries (normalising was ~20% of a clip's time)
    out = frames.to(torch.float32, copy=True, memory_format=torch.contiguous_format)
    if frames.dtype == torch.uint8:
        out.div_(255.0)
    out.sub_(torch.tensor(config.mean, dtype=torch.float32)[:, None, None])
    return out.div_(torch.tensor(config.std, dtype=torch.float32)[:, None, None])
