"""Pretrained towers: loading a Hugging Face model by id or folder, pooling, freezing.

The plugins' pretrained encoders (``text_hf``, ``image_hf``...) share this module:

- **Loading rules.** ``model`` is a local folder (read with ``local_files_only=True``:
  nothing is downloaded) or a hub id (downloaded by ``transformers`` for users with network
  access; never in anymodal's tests). A path that looks like a folder but does not exist is
  a :class:`anymodal.ConfigError`, never a hub lookup.
- **Pooling.** ``cls`` (the first token), ``mean`` (over real tokens), or ``pooler`` (the
  model's own pooled output); ``layer`` names a sub-module (``"encoder.layer.1"``) whose
  output is read instead of the last hidden state.
- **Freezing.** A frozen tower has no trainable parameter and stays in eval mode.

``transformers`` is imported inside the functions, never at ``import anymodal``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymodal.errors import ConfigError, PluginError
from anymodal.layers import masked_mean

__all__ = [
    "POOLINGS",
    "Freezable",
    "HFTower",
    "LayerTap",
    "OpenCLIPConfig",
    "PretrainedTower",
    "TowerConfig",
    "load_hf",
    "load_open_clip",
    "model_source",
    "pool_tokens",
]

POOLINGS = ("cls", "mean", "pooler")


def model_source(model: str | None, who: str) -> tuple[str, bool]:
    """``(source, is_local)`` for a model id or folder.

    Raises:
        ConfigError: no model given, or a path-like name whose folder does not exist.
    """
    if not model:
        raise ConfigError(f"{who}: give 'model', a local folder or a Hugging Face hub id")
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), True
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ConfigError(f"{who}: model folder {model} does not exist (a hub id looks like "
                          "'org/name')")
    return model, False


def _import_transformers(who: str) -> Any:
    try:
        import transformers
    except ImportError:
        raise PluginError(f"{who} needs the package transformers; install it with: "
                          "pip install transformers") from None
    return transformers


def load_hf(model: str | None, loader: str, who: str, **kwargs: Any) -> Any:
    """Load ``transformers.<loader>.from_pretrained(model)`` by the loading rules above.

    Args:
        model: a local folder or a hub id.
        loader: ``"AutoModel"``, ``"AutoTokenizer"``, ``"AutoImageProcessor"``...
        who: how errors name the caller (``"encoder 'text_hf'"``).
        **kwargs: passed to ``from_pretrained``.

    Raises:
        ConfigError: the folder or id holds no such model (the message says why).
    """
    source, local = model_source(model, who)
    transformers = _import_transformers(who)
    try:
        return getattr(transformers, loader).from_pretrained(source, local_files_only=local,
                                                             **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        where = f"folder {source}" if local else f"hub id {source!r}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{who}: cannot load {loader} from {where}: {first}") from None


def load_open_clip(model_name: str | None, pretrained: str | None, config_file: str | None,
                   who: str) -> tuple[nn.Module, str]:
    """An ``open_clip`` model and its name.

    Args:
        model_name: an open_clip architecture (``"ViT-B-32"``); defaults to the stem of
            ``config_file``.
        pretrained: a local weight file (``.pt``, ``.bin``, ``.safetensors``) or an open_clip
            tag (``"laion2b_s34b_b79k"``, downloaded once); ``None``: random weights.
        config_file: a JSON architecture to register first (its file name is its name).
        who: how errors name the caller.

    Raises:
        PluginError: open_clip is not installed.
        ConfigError: an unknown architecture, a missing file, or weights that do not fit.
    """
    try:
        import open_clip
    except ImportError:
        raise PluginError(f"{who} needs the package open-clip-torch; install it with: "
                          "pip install 'anymodal-image[open_clip]'") from None
    if config_file:
        if not Path(config_file).is_file():
            raise ConfigError(f"{who}: config_file {config_file} is not a file")
        open_clip.add_model_config(config_file)
        model_name = model_name or Path(config_file).stem
    if not model_name or model_name not in open_clip.list_models():
        close = difflib.get_close_matches(str(model_name), open_clip.list_models(), n=3)
        raise ConfigError(f"{who}: open_clip has no model {model_name!r}"
                          + (f"; did you mean {', '.join(close)}?" if close else ""))
    if pretrained and ("/" in pretrained or Path(pretrained).suffix) \
            and not Path(pretrained).is_file():
        raise ConfigError(f"{who}: pretrained weight file {pretrained} does not exist")
    try:
        model = open_clip.create_model(model_name, pretrained=pretrained or None,
                                       require_pretrained=bool(pretrained))
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{who}: pretrained {pretrained!r} does not fit {model_name!r}: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    return model, model_name


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """One vector per row from token states (or a convolutional feature map).

    Args:
        hidden: token states, or a ``[B, C, H, W]`` map (read as ``H*W`` tokens).
        mask: True on real tokens (``None``: all real).
        pooling: ``"cls"`` (first token) or ``"mean"`` (over real tokens).

    Shapes:
        hidden: ``[B, L, D]`` or ``[B, D, H, W]``; mask: ``[B, L]``; output: ``[B, D]``.
    """
    if hidden.dim() == 4:
        hidden = hidden.flatten(2).transpose(1, 2)
    if pooling == "cls":
        return hidden[:, 0]
    if mask is None:
        return hidden.mean(1)
    return masked_mean(hidden, mask.to(hidden.device))


def _named(model: nn.Module, name: str, who: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        close = difflib.get_close_matches(name, list(modules), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"{who}: the model has no layer {name!r}{hint}")
    return modules[name]


class LayerTap:
    """Keeps the output of a named sub-module from the last forward pass.

    Args:
        model: the tower.
        name: the dotted module name (``"encoder.layer.1"``).
        who: how errors name the caller.
    """

    def __init__(self, model: nn.Module, name: str, who: str) -> None:
        self.output: Any = None
        _named(model, name, who).register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.output = output[0] if isinstance(output, (tuple, list)) else output

    def take(self) -> torch.Tensor:
        """The kept output (and forget it)."""
        output, self.output = self.output, None
        if not torch.is_tensor(output):
            raise RuntimeError("the named layer did not run in the last forward pass")
        return output


@dataclass
class TowerConfig:
    """Parameters shared by the Hugging Face towers (``text_hf``, ``image_hf``...).

    Args:
        model: a local folder in Hugging Face format (read offline) or a hub id
            (downloaded once, for users with network access).
        pooling: ``"cls"`` (first token), ``"mean"`` (over real tokens or positions) or
            ``"pooler"`` (the model's pooled output).
        layer: a sub-module whose output is pooled instead of the last hidden state
            (names as ``model.named_modules()`` lists them, e.g. ``"encoder.layer.3"``).
        freeze: keep the weights fixed (no gradient, always in eval mode).
    """

    model: str | None = None
    pooling: str = "mean"
    layer: str | None = None
    freeze: bool = False


@dataclass
class OpenCLIPConfig:
    """Parameters of the open_clip towers (``image_open_clip``, ``text_open_clip``).

    Give both towers of a pair the same values (and ``freeze: true`` on both keys to keep
    the pair fixed: the ImageBind recipe).

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


class Freezable(nn.Module):
    """An encoder wrapping a pretrained ``inner`` module that may be frozen.

    A frozen inner module has no trainable parameter and stays in eval mode (no dropout)
    whatever mode the encoder is set to.
    """

    frozen: bool = False

    def freeze_inner(self, inner: nn.Module, freeze: bool) -> None:
        """Remember ``inner`` and freeze it when ``freeze``."""
        self.frozen = freeze
        self._inner_name = next(n for n, m in self.named_children() if m is inner)
        if freeze:
            inner.requires_grad_(False)
            inner.eval()

    def train(self, mode: bool = True) -> Freezable:
        """Set the training mode; a frozen inner module stays in eval mode."""
        super().train(mode)
        if self.frozen:
            getattr(self, self._inner_name).eval()
        return self

    def grad_context(self) -> Any:
        """No graph for a frozen module; a fine-tuned one follows the caller."""
        return torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen)


class PretrainedTower(Freezable):
    """Base of the pretrained encoders: a ``model`` with pooling, layer choice and freezing.

    Args:
        model: the loaded network.
        width: its output width.
        pooling: one of :data:`POOLINGS`.
        layer: a sub-module whose output is pooled instead of the last hidden state.
        freeze: no gradient, always in eval mode.
        who: how errors name the encoder.
    """

    def __init__(self, model: nn.Module, width: int, pooling: str, layer: str | None,
                 freeze: bool, who: str) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"{who}: pooling={pooling!r}; valid choices: {', '.join(POOLINGS)}")
        if pooling == "pooler" and layer:
            raise ConfigError(f"{who}: pooling='pooler' reads the model's pooled output; "
                              "it cannot be combined with layer")
        self.model = model
        self.width = int(width)
        self.pooling = pooling
        self.tap = LayerTap(model, layer, who) if layer else None
        self.freeze_inner(model, freeze)

    def run(self, call: Callable[[], Any],
            mask: torch.Tensor | Callable[[torch.Tensor], torch.Tensor | None] | None
            ) -> torch.Tensor:
        """Run ``call`` (the model's forward) and pool its output.

        Args:
            call: runs the model.
            mask: real positions of the pooled states, or a function of those states that
                gives it (when the model changes the length, as wav2vec2 does).

        Shapes:
            mask: ``[B, L]`` or None; output: ``[B, width]``.
        """
        with self.grad_context():
            outputs = call()
        if self.pooling != "pooler":
            hidden = self.tap.take() if self.tap is not None else outputs.last_hidden_state
            return pool_tokens(hidden, mask(hidden) if callable(mask) else mask, self.pooling)
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ConfigError("pooling='pooler': this model has no pooled output; use "
                              "'cls' or 'mean'")
        return pooled


class HFTower(PretrainedTower):
    """A Hugging Face ``AutoModel`` read from ``config.model``, pooled as the config says.

    The base of the ``*_hf`` encoders of the text, image, audio and video plugins: each
    adds only how its modality's batch reaches the model.

    Args:
        config: the encoder's :class:`TowerConfig` (or a subclass of it).
        who: how errors name the encoder (``"audio_hf"``).
        width: the output width from the model's config (default: its ``hidden_size``).
    """

    def __init__(self, config: TowerConfig, who: str,
                 width: Callable[[Any], int] | None = None) -> None:
        model = load_hf(config.model, "AutoModel", who)
        hidden = width(model.config) if width is not None else model.config.hidden_size
        super().__init__(model, hidden, config.pooling, config.layer, config.freeze, who)
        self.config = config
