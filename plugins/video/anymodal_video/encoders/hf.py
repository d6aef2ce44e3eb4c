"""``video_hf``: any Hugging Face video model (VideoMAE, TimeSformer, ViViT) as an encoder.

The model comes from a local folder or a hub id (see :mod:`anymodal.towers`). Its own
processor prepares the sampled frames in the video modality's transform: set the modality
option ``processor`` to the same folder or id, and ``video_hf``'s ``model`` follows it
(bound), so a recipe names the model once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anymodal import encoder
from anymodal.towers import HFTower, TowerConfig
from anymodal_video.encoders.common import check_clips

__all__ = ["HFVideoConfig", "HFVideoEncoder"]

WHO = "encoder 'video_hf'"


@dataclass
class HFVideoConfig(TowerConfig):
    """Parameters of ``video_hf``: :class:`anymodal.towers.TowerConfig`.

    ``model`` is set from the modality's ``processor`` (e.g. ``MCG-NJU/videomae-base``).
    """


@encoder("video_hf", config=HFVideoConfig, binds={"model": "processor"})
class HFVideoEncoder(HFTower):
    """Any Hugging Face AutoModel video tower, mean/CLS/pooler/layer pooling.

    Shapes:
        input: ``[B, T, 3, H, W]`` (the model's processor output); output:
        ``[B, hidden_size]``.
    """

    def __init__(self, config: HFVideoConfig) -> None:
        super().__init__(config, WHO)
        self.config: HFVideoConfig = config

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the model on the clips' pixel values and pool."""
        clips = check_clips(batch, "video_hf")
        return self.run(lambda: self.model(pixel_values=clips), None)
