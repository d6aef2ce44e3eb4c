"""``image_open_clip``: the image tower of an open_clip CLIP model.

With ``text_open_clip`` (the text tower of the same model, in anymodal-text) it gives the
ImageBind recipe: an image-text pair kept frozen together (``freeze: true`` on both keys)
while other modalities are trained into their space. Set the image modality's options to the
model's preprocessing (``size``: its image size; ``mean``/``std``: open_clip's
``OPENAI_DATASET_MEAN``/``OPENAI_DATASET_STD`` for OpenAI-trained weights).
"""

from __future__ import annotations

import torch

from anymodal import encoder
from anymodal.towers import Freezable, OpenCLIPConfig, load_open_clip

__all__ = ["OpenCLIPImageEncoder"]

WHO = "encoder 'image_open_clip'"


@encoder("image_open_clip", config=OpenCLIPConfig)
class OpenCLIPImageEncoder(Freezable):
    """The image tower of an open_clip model (projected CLIP image embedding).

    Shapes:
        input: ``float [B, 3, S, S]`` with ``S`` the model's image size; output:
        ``[B, embed_dim]``.
    """

    def __init__(self, config: OpenCLIPConfig) -> None:
        super().__init__()
        model, _ = load_open_clip(config.model_name, config.pretrained, config.config_file, WHO)
        self.config = config
        self.visual = model.visual  # the text tower is dropped: only this one is kept
        self.width = int(self.visual.output_dim)
        size = getattr(self.visual, "image_size", None)
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.freeze_inner(self.visual, config.freeze)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed ``images`` with the CLIP image tower."""
        if images.dim() != 4 or tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"image_open_clip expects [B, 3, {self.image_size[0]}, "
                             f"{self.image_size[1]}] (set the image modality's size), got "
                             f"{tuple(images.shape)}")
        with self.grad_context():
            return self.visual(images.float())
