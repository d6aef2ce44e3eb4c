"""The ``image`` modality: load (Pillow), transform (v2), collate (stack), synthesize.

An item is a normalised ``float32 [3, size, size]`` tensor; the collated value is
``float32 [B, 3, size, size]``.
"""

from __future__ import annotations

from functools import partial

import torch

from anymodal import ModalitySpec
from anymodal_image.config import ImageConfig, validate_image_config
from anymodal_image.io import load_image
from anymodal_image.synthetic import MAX_CLASSES, draw_images
from anymodal_image.transforms import ImageTransform, collate_images

__all__ = ["make_image_modality", "synthesize_images"]


def synthesize_images(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                      *, config: ImageConfig, transform: ImageTransform) -> list[torch.Tensor]:
    """``n`` eval-mode items of labelled shapes (see :mod:`anymodal_image.synthetic`)."""
    pixels, _ = draw_images(n, config.resize or config.size, generator, labels,
                            config.num_classes)
    return [transform(image, False) for image in pixels]


def make_image_modality(config: ImageConfig) -> ModalitySpec:
    """The ``image`` modality with ``config``'s options bound."""
    config = validate_image_config(config, MAX_CLASSES)
    transform = ImageTransform(config)
    return ModalitySpec(
        name="image",
        # partial, not lambda: the spec's functions must pickle into spawned workers.
        load=partial(load_image, background=config.background),
        transform=transform,
        collate=collate_images,
        synthesize=partial(synthesize_images, config=config, transform=transform),
        default_encoder="image_vit_tiny",
        num_classes=config.num_classes,
        config_cls=ImageConfig,
        configure=make_image_modality,
        description="RGB images (png, jpeg, webp... via Pillow), resized and cropped to size",
    )
