"""``image_hf``: any Hugging Face vision model (ViT, DeiT, DINOv2, ConvNeXt...) as an encoder.

The model comes from a local folder or a hub id (see :mod:`anymodal.towers`). Its own image
processor prepares the items in the image modality's transform: set the modality option
``processor`` to the same folder or id, and ``image_hf``'s ``model`` follows it (bound), so a
recipe names the model once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anymodal import encoder
from anymodal.towers import HFTower, TowerConfig

__all__ = ["HFImageConfig", "HFImageEncoder"]

WHO = "encoder 'image_hf'"


@dataclass
class HFImageConfig(TowerConfig):
    """Parameters of ``image_hf`` (:class:`anymodal.towers.TowerConfig`, CLS by default).

    Args:
        model: a local folder or a hub id (``google/vit-base-patch16-224-in21k``); set
            from the modality's ``processor``.
        pooling: ``"cls"`` (default), ``"mean"`` or ``"pooler"``.
        layer: a sub-module whose output is pooled, e.g. ``"layers.5"``.
        freeze: keep the weights fixed (no gradient, always in eval mode).
    """

    pooling: str = "cls"


def _width(config: object) -> int:
    sizes = getattr(config, "hidden_sizes", None)
    return int(getattr(config, "hidden_size", None) or sizes[-1])


@encoder("image_hf", config=HFImageConfig, binds={"model": "processor"})
class HFImageEncoder(HFTower):
    """Any Hugging Face AutoModel vision tower, CLS/mean/pooler/layer pooling.

    Shapes:
        input: ``float [B, 3, H, W]`` (the model's processor output); output:
        ``[B, hidden_size]``.
    """

    def __init__(self, config: HFImageConfig) -> None:
        super().__init__(config, WHO, width=_width)
        self.config: HFImageConfig = config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Run the model on ``pixel_values`` and pool."""
        if images.dim() != 4:
            raise ValueError(f"image_hf expects pixel values [B, C, H, W], got "
                             f"{tuple(images.shape)}")
        return self.run(lambda: self.model(pixel_values=images.float()), None)
