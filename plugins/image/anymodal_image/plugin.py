"""The hook implementations of anymodal-image (entry point ``image`` in group ``anymodal``)."""

from __future__ import annotations

from typing import Any

from anymodal import EncoderSpec, hookimpl
from anymodal_image.config import CNNSmallConfig, ImageConfig, TimmConfig, ViTTinyConfig
from anymodal_image.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)


def _build_vit(config: ViTTinyConfig) -> Any:
    from anymodal_image.encoders.vit import ViTTiny

    return ViTTiny(config)


def _build_cnn(config: CNNSmallConfig) -> Any:
    from anymodal_image.encoders.cnn import CNNSmall

    return CNNSmall(config)


def _build_timm(config: TimmConfig) -> Any:
    # Registered even without timm: building it then says what to install.
    from anymodal_image.encoders.timm_model import TimmEncoder

    return TimmEncoder(config)


@hookimpl
def anymodal_register_modalities(register: Any) -> None:
    from anymodal_image.modality import make_image_modality

    register(make_image_modality(ImageConfig()))


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("image_vit_tiny", "image", _build_vit, ViTTinyConfig,
                         "small Vision Transformer (patch 16, 4 blocks, width 192)"))
    register(EncoderSpec("image_cnn_small", "image", _build_cnn, CNNSmallConfig,
                         "small residual CNN with GroupNorm"))
    register(EncoderSpec("image_timm", "image", _build_timm, TimmConfig,
                         "any timm model, weights from a local file; needs "
                         "anymodal-image[timm]"))
