"""The ``image`` modality and its encoders (entry point ``image`` in the group ``anymodal``).

Importing this module is cheap: Pillow, torchvision and timm are imported when an image is
first loaded, transformed or encoded.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from anymodal import define_modality, plugin_hooks
from anymodal_image.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)
from anymodal_image.config import ImageConfig, validate_image_config
from anymodal_image.encoders.cnn import CNNSmall
from anymodal_image.encoders.hf import HFImageEncoder
from anymodal_image.encoders.open_clip_tower import OpenCLIPImageEncoder
from anymodal_image.encoders.timm_model import TimmEncoder
from anymodal_image.encoders.vit import ViTTiny
from anymodal_image.io import load_image
from anymodal_image.synthetic import MAX_CLASSES, synthesize_images
from anymodal_image.transforms import collate_images, transform_image

__all__ = ["IMAGE", "anymodal_register_encoders", "anymodal_register_modalities"]


def _load(source: Any, config: ImageConfig) -> torch.Tensor:
    return load_image(source, background=config.background, max_pixels=config.max_pixels)


IMAGE = define_modality(
    "image", ImageConfig, load=_load, transform=transform_image, collate=collate_images,
    synthesize=synthesize_images, validate=partial(validate_image_config, max_classes=MAX_CLASSES),
    default_encoder="image_vit_tiny",
    description="RGB images (png, jpeg, webp... via Pillow), resized and cropped to size",
)

anymodal_register_modalities, anymodal_register_encoders = plugin_hooks(
    modalities=[IMAGE],
    encoders=[ViTTiny, CNNSmall, TimmEncoder, HFImageEncoder, OpenCLIPImageEncoder],
)
