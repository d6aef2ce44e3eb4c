"""``text_open_clip``: the text tower of an open_clip CLIP model, with its own tokenizer.

The pair of ``image_open_clip`` (anymodal-image): give both the same ``model_name``,
``pretrained`` and ``config_file``, and ``freeze: true`` on both keys to keep the pair fixed
while other modalities learn its space (the ImageBind recipe). The raw ``text`` of the
collated batch is tokenised here, as ``text_hf`` does.
"""

from __future__ import annotations

from typing import Any

import torch

from anymodal import encoder
from anymodal.towers import Freezable, OpenCLIPConfig, load_open_clip
from anymodal_text.encoders.raw import raw_texts

__all__ = ["OpenCLIPTextEncoder"]

WHO = "encoder 'text_open_clip'"


@encoder("text_open_clip", config=OpenCLIPConfig)
class OpenCLIPTextEncoder(Freezable):
    """The text tower of an open_clip model (projected CLIP text embedding).

    Shapes:
        input: the text modality's collated dict (its ``text``, ``list[str]`` of length B);
        output: ``[B, embed_dim]``.
    """

    def __init__(self, config: OpenCLIPConfig) -> None:
        super().__init__()
        import open_clip

        model, name = load_open_clip(config.model_name, config.pretrained, config.config_file,
                                     WHO)
        model.visual = None  # only the text tower is kept
        self.config = config
        self.model = model
        self.tokenizer = open_clip.get_tokenizer(name)
        self.width = int(model.text_projection.shape[1]) if torch.is_tensor(
            getattr(model, "text_projection", None)) else int(model.embed_dim)
        self.freeze_inner(self.model, config.freeze)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Tokenise ``batch["text"]`` and embed it with the CLIP text tower."""
        texts = raw_texts(batch, "text_open_clip")
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(texts).to(device)
        with self.grad_context():
            return self.model.encode_text(tokens)
