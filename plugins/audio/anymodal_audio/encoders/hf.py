"""``audio_hf``: any Hugging Face audio model (wav2vec2, HuBERT, AST...) as an encoder.

The model comes from a local folder or a hub id (see :mod:`anymodal.towers`). Its own
feature extractor prepares each clip in the audio modality's transform: set the modality
option ``processor`` to the same folder or id (and ``sample_rate`` to its rate), and
``audio_hf``'s ``model`` follows it (bound), so a recipe names the model once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from anymodal import encoder
from anymodal.towers import HFTower, TowerConfig
from anymodal_audio.encoders.common import average_clips

__all__ = ["HFAudioConfig", "HFAudioEncoder"]

WHO = "encoder 'audio_hf'"


@dataclass
class HFAudioConfig(TowerConfig):
    """Parameters of ``audio_hf``: :class:`anymodal.towers.TowerConfig`.

    ``model`` is set from the modality's ``processor`` (e.g. ``facebook/wav2vec2-base``).
    """


@encoder("audio_hf", config=HFAudioConfig, binds={"model": "processor"})
class HFAudioEncoder(HFTower):
    """Any Hugging Face AutoModel audio tower; clips of one item averaged.

    Shapes:
        input: ``{"hf_inputs": {name: [R, L, ...]}, "hf_mask": [R, L], "item_index"?: [R]}``
        (the audio modality's batch with the option ``processor``); output:
        ``[B, hidden_size]``.
    """

    def __init__(self, config: HFAudioConfig) -> None:
        super().__init__(config, WHO)
        self.config: HFAudioConfig = config

    def _frame_mask(self, mask: torch.Tensor, frames: int) -> torch.Tensor | None:
        """The input mask carried to the model's output frames (wav2vec2 downsamples)."""
        if mask.shape[1] == frames:
            return mask
        reduce = getattr(self.model, "_get_feature_vector_attention_mask", None)
        return None if reduce is None else reduce(frames, mask.long()).bool()

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Run the model on the extracted inputs, pool real frames, average clips."""
        if not isinstance(batch, dict) or "hf_inputs" not in batch:
            raise ValueError("audio_hf reads the audio modality's batch made with the option "
                             "processor (key 'hf_inputs'); set options.processor")
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in batch["hf_inputs"].items()}
        mask = batch["hf_mask"].to(device)
        # Raw waveforms (input_values) are padded: the model must see the mask too.
        kwargs = {"attention_mask": mask.long()} if "input_values" in inputs else {}
        pooled = self.run(lambda: self.model(**inputs, **kwargs),
                          lambda hidden: self._frame_mask(mask, hidden.shape[1]))
        return average_clips(pooled, batch.get("item_index"))
