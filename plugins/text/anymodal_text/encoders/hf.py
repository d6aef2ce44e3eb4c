"""``text_hf``: any Hugging Face text model (BERT, RoBERTa, MiniLM...) as a text encoder.

The model and its tokenizer come from a local folder or a hub id (see
:mod:`anymodal.towers` for the loading rules). Like ``text_minilm``, the encoder tokenises
the raw ``text`` of the collated batch with the model's own tokenizer (the text modality
carries it beside its byte ids, see :mod:`anymodal_text.transforms`), so one recipe changes
its text encoder without touching its data options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from anymodal import encoder
from anymodal.towers import HFTower, TowerConfig, load_hf
from anymodal_text.encoders.raw import raw_texts

__all__ = ["HFTextConfig", "HFTextEncoder"]

WHO = "encoder 'text_hf'"


@dataclass
class HFTextConfig(TowerConfig):
    """Parameters of ``text_hf``: :class:`anymodal.towers.TowerConfig` and two more.

    Args:
        model: a local folder (config, weights, tokenizer) or a hub id such as
            ``sentence-transformers/all-MiniLM-L6-v2``.
        pooling: ``"mean"`` over real tokens (default), ``"cls"`` or ``"pooler"``.
        layer: a sub-module whose output is pooled, e.g. ``"encoder.layer.3"``.
        freeze: keep the weights fixed (no gradient, always in eval mode).
        max_length: the most tokens per text.
        normalize: L2-normalise the pooled vector (as sentence-transformers does).
    """

    max_length: int = 256
    normalize: bool = False


@encoder("text_hf", config=HFTextConfig)
class HFTextEncoder(HFTower):
    """Any Hugging Face AutoModel text tower, its own tokenizer, CLS/mean/pooler/layer.

    Shapes:
        input: the text modality's collated dict; its ``text`` (``list[str]`` of length B)
        is read. Output: ``[B, hidden_size]``.
    """

    def __init__(self, config: HFTextConfig) -> None:
        super().__init__(config, WHO)
        self.config: HFTextConfig = config
        self.tokenizer = load_hf(config.model, "AutoTokenizer", WHO)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Tokenise ``batch["text"]``, run the model and pool."""
        texts = raw_texts(batch, "text_hf")
        device = next(self.model.parameters()).device
        encoded = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.config.max_length, return_tensors="pt")
        encoded = {key: value.to(device) for key, value in encoded.items()}
        pooled = self.run(lambda: self.model(**encoded), encoded["attention_mask"].bool())
        return F.normalize(pooled, dim=-1) if self.config.normalize else pooled
