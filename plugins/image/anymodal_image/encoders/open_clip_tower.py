"""``image_open_clip``: the image tower of an open_clip CLIP model.

With ``text_open_clip`` (the text tower of the same model, in anymodal-text) it gives the
ImageBind recipe: an image-text pair kept frozen together (``freeze: true`` on both keys)
while other modalities are trained into their space. Set the image modality's options to the
model's preprocessing (``size``: its image size; ``mean``/``std``: open_clip's
``OPENAI_DATASET_MEAN``/``OPENAI_DATASET_STD`` for OpenAI-trained weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from anymodal import encoder
from anymodal.towers import load_open_clip

__all__ = ["OpenCLIPImageConfig", "OpenCLIPImageEncoder"]

WHO = "encoder 'image_open_clip'"


@dataclass
class OpenCLIPImageConfig:
    """Parameters of ``image_open_clip``.

    Args:
        model_name: the open_clip architecture (``"ViT-B-32"``); defaults to the stem of
            ``config_file``.
        pretrained: a local weight file, or an open_clip tag (``"laion2b_s34b_b79k"``,
            downloaded once); ``None``: random weights.
        config_file: a JSON architecture to register first (tests use a tiny one).
        freeze: keep the tower fixed (no gradient, always in eval mode).
    """

    model_name: str | None = None
    pretrained: str | None = None
    config_file: str | None = None
    freeze: bool = False


@encoder("image_open_clip", config=OpenCLIPImageConfig)
class OpenCLIPImageEncoder(nn.Module):
    """The image tower of an open_clip model (projected CLIP image embedding).

    Shapes:
        input: ``float [B, 3, S, S]`` with ``S`` the model's image size; output:
        ``[B, embed_dim]``.
    """

    def __init__(self, config: OpenCLIPImageConfig) -> None:
        super().__init__()
        model, _ = load_open_clip(config.model_name, config.pretrained, config.config_file, WHO)
        self.config = config
        self.visual = model.visual  # the text tower is dropped: only this one is kept
        self.width = int(self.visual.output_dim)
        size = getattr(self.visual, "image_size", None)
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if config.freeze:
            self.visual.requires_grad_(False)
            self.visual.eval()

    def train(self, mode: bool = True) -> OpenCLIPImageEncoder:
        """Set the training mode; a frozen tower stays in eval mode."""
        super().train(mode)
        if self.config.freeze:
            self.visual.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed ``images`` with the CLIP image tower."""
        if images.dim() != 4 or tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"image_open_clip expects [B, 3, {self.image_size[0]}, "
                             f"{self.image_size[1]}] (set the image modality's size), got "
                             f"{tuple(images.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze):
            return self.visual(images.float())
