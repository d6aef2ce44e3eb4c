"""From a :class:`VideoSource` to a normalised clip ``[T, 3, size, size]``."""

from __future__ import annotations

from typing import Any

import torch

from anymodal_video.config import VideoConfig
from anymodal_video.io import VideoSource
from anymodal_video.sampling import sample_indices

__all__ = ["apply_processor", "normalize", "spatial_transform", "transform_video"]


def transform_video(source: VideoSource, train: bool, config: VideoConfig) -> torch.Tensor:
    """Sample, decode and prepare one clip.

    Args:
        source: from ``load``.
        train: frame jitter, scale jitter, random crop and flip when True.
        config: the modality's options.

    Shapes:
        output: ``[num_frames, 3, size, size]``, float32, normalised (with the option
        ``processor``: the model's ``pixel_values`` of the sampled frames).
    """
    indices = sample_indices(source.num_frames, source.fps, train, config)
    frames = source.read(indices).permute(0, 3, 1, 2)  # [T, H, W, C] -> [T, C, H, W]
    if config.processor:
        return apply_processor(frames, train, config)
    return normalize(spatial_transform(frames, train, config), config)


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


def spatial_transform(frames: torch.Tensor, train: bool, config: VideoConfig) -> torch.Tensor:
    """Scale the short side, crop a square, maybe flip; the same for every frame of a clip.

    Frames stay uint8 while they are resized (cheaper, and how decoders deliver them).

    Shapes:
        frames: ``[T, C, H, W]``; output: ``[T, C, size, size]``.
    """
    import torchvision.transforms.v2.functional as TF

    short = config.resize_to
    if train and config.max_scale > 1.0:
        top = round(short * config.max_scale)
        short = int(torch.randint(short, top + 1, ()).item())
    frames = TF.resize(frames, [short], antialias=True)
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
    frames = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    mean = torch.tensor(config.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(config.std, dtype=torch.float32)[:, None, None]
    return (frames - mean) / std
