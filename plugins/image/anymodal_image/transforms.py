"""The image transform (torchvision ``transforms.v2``) and collate.

Eval: resize the short side to ``resize`` (default ``size``), centre crop ``size``, scale to
[0, 1], normalise. Training: the crop named by ``train_crop``, a horizontal flip with
probability ``hflip``, then the same scaling and normalisation. The random draws of v2
come from torch's global generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

from typing import Any

import torch

from anymodal_image.config import ImageConfig

__all__ = ["collate_images", "transform_image"]


def _build(config: ImageConfig, train: bool) -> Any:
    from torchvision.transforms import v2

    resize = config.resize or config.size
    if train and config.train_crop == "random_resized":
        geometry = [v2.RandomResizedCrop(config.size, scale=(config.min_scale, 1.0),
                                         antialias=True)]
    elif train and config.train_crop == "random":
        geometry = [v2.Resize(resize, antialias=True), v2.RandomCrop(config.size)]
    else:
        geometry = [v2.Resize(resize, antialias=True), v2.CenterCrop(config.size)]
    if train and config.hflip > 0:
        geometry.append(v2.RandomHorizontalFlip(config.hflip))
    return v2.Compose([
        *geometry,
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(config.mean), std=list(config.std)),
    ])


# Built on first use per process (registering the modality imports no torchvision), one
# pair per distinct config; repr() keys it because the config holds lists.
_PIPELINES: dict[tuple[str, bool], Any] = {}
_PROCESSORS: dict[str, Any] = {}


def transform_image(raw: torch.Tensor, train: bool, config: ImageConfig) -> torch.Tensor:
    """``transform(raw, train) -> item`` of the image modality.

    Args:
        raw: pixels from :func:`anymodal_image.io.load_image`.
        train: use the training crop and flip.
        config: the modality's options.

    Shapes:
        raw: ``uint8 [3, H, W]``; output: ``float32 [3, size, size]``.
    """
    if raw.dtype != torch.uint8 or raw.dim() != 3 or raw.shape[0] != 3:
        raise ValueError(f"image transform expects uint8 [3, H, W] pixels (from load), "
                         f"got {raw.dtype} {tuple(raw.shape)}")
    if config.processor:
        return _with_processor(raw, train, config)
    key = (repr(config), bool(train))
    if key not in _PIPELINES:
        _PIPELINES[key] = _build(config, bool(train))
    return _PIPELINES[key](raw)


def _with_processor(raw: torch.Tensor, train: bool, config: ImageConfig) -> torch.Tensor:
    """The model's own image processor (``config.processor``) on ``raw``; flip in training."""
    if config.processor not in _PROCESSORS:
        from anymodal.towers import load_hf

        _PROCESSORS[config.processor] = load_hf(config.processor, "AutoImageProcessor",
                                                "modality 'image' (option processor)")
    if train and config.hflip > 0 and float(torch.rand(())) < config.hflip:
        raw = raw.flip(-1)
    out = _PROCESSORS[config.processor](images=raw, return_tensors="pt")["pixel_values"]
    return out[0].float()


def collate_images(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack items into a batch.

    Shapes:
        items: each ``[3, size, size]``; output ``[B, 3, size, size]``.
    """
    return torch.stack(items)
