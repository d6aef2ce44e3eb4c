"""Option dataclasses of the image modality and of its encoders.

They are validated by :func:`anymodal.get_modality` / :func:`anymodal.create_encoder`
(unknown keys and wrong types raise :class:`anymodal.ConfigError`); the checks that
types cannot express are in :func:`validate_image_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anymodal import ConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TRAIN_CROPS",
    "CNNSmallConfig",
    "ImageConfig",
    "TimmConfig",
    "ViTTinyConfig",
    "validate_image_config",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRAIN_CROPS = ("random_resized", "random", "center")


@dataclass
class ImageConfig:
    """Options of the ``image`` modality.

    Args:
        size: side of the square item (``[3, size, size]``); 224 by default, recipes for a
            CPU may use 64 or 96.
        resize: short side the image is resized to before the centre (eval) or random
            (``train_crop="random"``) crop; ``None``: ``size`` (the crop then only trims
            the long side, as open_clip does).
        train_crop: augmentation crop in training: ``"random_resized"`` (random area and
            aspect, resized to ``size``), ``"random"`` (resize, then a random square) or
            ``"center"`` (as in eval).
        min_scale: smallest fraction of the image area a ``random_resized`` crop keeps.
        hflip: probability of a horizontal flip in training.
        mean: per-channel mean subtracted after scaling to [0, 1] (ImageNet's by default).
        std: per-channel standard deviation divided by.
        background: grey level (0-255) that transparent pixels are composited onto.
        max_pixels: images with more pixels (width x height) are bad items, refused from
            their header before decoding (``0``: no limit).
        num_classes: classes of the synthetic images (at most 36: 6 colours x 6 shapes).
        processor: a Hugging Face model (local folder or hub id) whose own image processor
            prepares the items instead of the resize/crop/normalise above (only ``hflip``
            still applies in training); ``image_hf`` loads that model by default.
    """

    size: int = 224
    resize: int | None = None
    train_crop: str = "random_resized"
    min_scale: float = 0.5
    hflip: float = 0.5
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    background: int = 255
    max_pixels: int = 50_000_000
    num_classes: int = 16
    processor: str | None = None


def validate_image_config(config: ImageConfig, max_classes: int) -> ImageConfig:
    """Raise :class:`anymodal.ConfigError` on options that cannot work."""
    problems = []
    if config.size < 8:
        problems.append(f"size={config.size} must be >= 8")
    if config.resize is not None and config.resize < config.size:
        problems.append(f"resize={config.resize} must be >= size={config.size} (or null)")
    if config.train_crop not in TRAIN_CROPS:
        problems.append(f"train_crop={config.train_crop!r} must be one of {TRAIN_CROPS}")
    if not 0.0 < config.min_scale <= 1.0:
        problems.append(f"min_scale={config.min_scale} must be in (0, 1]")
    if not 0.0 <= config.hflip <= 1.0:
        problems.append(f"hflip={config.hflip} must be in [0, 1]")
    if len(config.mean) != 3 or len(config.std) != 3 or min(config.std) <= 0:
        problems.append("mean and std need 3 values each, std > 0")
    if not 0 <= config.background <= 255:
        problems.append(f"background={config.background} must be in 0..255")
    if not 1 <= config.num_classes <= max_classes:
        problems.append(f"num_classes={config.num_classes} must be in 1..{max_classes}")
    if problems:
        raise ConfigError("modality 'image': " + "; ".join(problems))
    return config


@dataclass
class ViTTinyConfig:
    """Hyper-parameters of ``image_vit_tiny``.

    Args:
        image_size: the side its position table is laid out for (set from the modality's
            ``size``); other input sizes are served by interpolating that table (bicubic),
            as timm's dynamic image size.
        patch_size: side of the square patches (and stride of the patch projection).
        width: token width, and the output width.
        depth: transformer blocks.
        heads: attention heads (must divide ``width``).
        mlp_ratio: hidden size of each block's MLP, as a multiple of ``width``.
        pool: ``"cls"`` (the class token) or ``"mean"`` (mean of the patch tokens).
        dropout: dropout on attention weights and MLP outputs.
    """

    image_size: int = 224
    patch_size: int = 16
    width: int = 192
    depth: int = 4
    heads: int = 3
    mlp_ratio: float = 4.0
    pool: str = "cls"
    dropout: float = 0.0


@dataclass
class CNNSmallConfig:
    """Hyper-parameters of ``image_cnn_small``.

    Args:
        channels: output channels of each stage; every stage halves the resolution.
        blocks: residual blocks per stage.
        norm: ``"group"`` (GroupNorm: no dependence on the batch, safe with small
            contrastive batches) or ``"batch"`` (BatchNorm).
        width: output width (a linear map from the pooled last stage).
    """

    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    blocks: int = 1
    norm: str = "group"
    width: int = 256


@dataclass
class TimmConfig:
    """Parameters of ``image_timm``.

    Args:
        model_name: any name ``timm.list_models()`` knows (``"resnet18"``,
            ``"vit_tiny_patch16_224"``, ``"convnext_atto"``...), a local folder in timm's
            Hugging Face layout (``config.json`` + ``model.safetensors``), or an
            ``hf-hub:org/name`` id (downloaded by timm).
        pretrained_path: a local weight file (``.safetensors``, ``.pth``, ``.bin``) to load;
            timm's own filters adapt original checkpoints and drop the classifier.
            ``None``: random initialisation. Nothing is ever downloaded.
        freeze: keep the weights fixed (no gradient, always in eval mode).
        model_kwargs: extra arguments of ``timm.create_model`` (``img_size``,
            ``drop_path_rate``, ``dynamic_img_size``...).
        pooling: timm's ``global_pool`` (``"avg"``, ``"max"``, ``"avgmax"``, ``"token"``
            for the class token of a ViT...); ``None``: the model's default.
    """

    model_name: str = "resnet18"
    pretrained_path: str | None = None
    freeze: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pooling: str | None = None
