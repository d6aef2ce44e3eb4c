"""``image_timm``: any timm model as an image encoder.

Loading rules (as :mod:`anymodal.towers`): ``model_name`` is a timm architecture (random
weights, or a local ``pretrained_path``), a local folder in timm's Hugging Face layout
(``config.json`` + ``model.safetensors``), or an ``hf-hub:org/name`` id that timm downloads
for users with network access. Tests use only the first two.

The model is built with ``num_classes=0``, so that its forward returns the pooled
pre-logits features. Pretrained weights come only from a local file
(``pretrained_path``), passed to timm as the ``file`` of its pretrained config: timm then
applies the model's own checkpoint filter (original checkpoints are converted) and drops
the classifier. timm loads non-strictly once the classifier is dropped and only *logs*
the keys it could not match; this module listens to that log and turns a partial load
into a :class:`anymodal.ConfigError`, so that a wrong file never passes silently.

``image_timm`` is registered whether or not timm is installed (it is listed by
``anymodal plugins`` either way); building it without timm raises a
:class:`anymodal.PluginError` that says what to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymodal import ConfigError, PluginError, encoder
from anymodal.towers import Freezable
from anymodal_image.config import TimmConfig

__all__ = ["TimmEncoder"]

_BUILDER_LOGGER = "timm.models._builder"


def _import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise PluginError(
            "encoder 'image_timm' needs the package timm; install it with: "
            "pip install 'anymodal-image[timm]'"
        ) from None
    return timm


class _LoadReport(logging.Handler):
    """Collects timm's "Missing keys" / "Unexpected keys" messages while loading."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Missing keys", "Unexpected keys")):
            self.problems.append(message.split(" discovered")[0].split(" found")[0])


@contextlib.contextmanager
def _listen_to_timm_loading() -> Iterator[_LoadReport]:
    logger = logging.getLogger(_BUILDER_LOGGER)
    report, level = _LoadReport(), logger.level
    logger.addHandler(report)
    logger.setLevel(logging.INFO)
    try:
        yield report
    finally:
        logger.removeHandler(report)
        logger.setLevel(level)


def _check_name(timm: Any, name: str) -> None:
    if name.startswith("hf-hub:"):
        return  # a hub model: timm downloads it (for users with network access)
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"encoder 'image_timm': timm has no model {name!r}{hint}")


def _from_folder(config: TimmConfig) -> TimmConfig:
    """A model folder in timm's Hugging Face layout as architecture + weight file.

    ``config.json`` names the ``architecture``; the weights are ``model.safetensors`` or
    ``pytorch_model.bin`` beside it.
    """
    folder = Path(config.model_name)
    try:
        architecture = json.loads((folder / "config.json").read_text())["architecture"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"encoder 'image_timm': model folder {folder} has no readable "
                          f"config.json naming its architecture ({exc})") from None
    weights = [folder / n for n in ("model.safetensors", "pytorch_model.bin")
               if (folder / n).is_file()]
    if not weights:
        raise ConfigError(f"encoder 'image_timm': model folder {folder} holds no "
                          "model.safetensors or pytorch_model.bin")
    return dataclasses.replace(config, model_name=architecture, pretrained_path=str(weights[0]))


def _create(timm: Any, config: TimmConfig) -> nn.Module:
    path = config.pretrained_path
    kwargs: dict[str, Any] = dict(config.model_kwargs)
    if config.pooling is not None:
        kwargs["global_pool"] = config.pooling
    if config.model_name.startswith("hf-hub:") and not path:
        return timm.create_model(config.model_name, pretrained=True, num_classes=0, **kwargs)
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"encoder 'image_timm': pretrained_path {path} is not a file")
        # Every remote source blanked: timm can only read the local file.
        kwargs["pretrained_cfg_overlay"] = {"file": str(path), "url": "", "hf_hub_id": "",
                                            "source": ""}
    try:
        with _listen_to_timm_loading() as report:
            model = timm.create_model(config.model_name, pretrained=bool(path), num_classes=0,
                                      **kwargs)
    except TypeError as exc:
        raise ConfigError(f"encoder 'image_timm': bad model_kwargs for "
                          f"{config.model_name!r}: {exc}") from None
    except (RuntimeError, KeyError, ValueError) as exc:
        what = f"pretrained_path {path}" if path else "model_kwargs"
        raise ConfigError(f"encoder 'image_timm': {what} does not fit {config.model_name!r}: "
                          f"{str(exc).splitlines()[0]}") from None
    if report.problems:
        raise ConfigError(f"encoder 'image_timm': pretrained_path {path} does not fit "
                          f"{config.model_name!r}: {'; '.join(report.problems)[:500]}")
    return model


@encoder("image_timm", config=TimmConfig,
         description="any timm model (architecture, local folder or hf-hub id); needs "
                     "anymodal-image[timm]")
class TimmEncoder(Freezable):
    """A timm backbone's pooled features.

    Args:
        config: its :class:`~anymodal_image.config.TimmConfig`.

    Shapes:
        input: ``float [B, 3, H, W]`` (sizes the model accepts); output ``[B, width]``,
        where ``width`` is the model's pre-logits feature size.
    """

    def __init__(self, config: TimmConfig) -> None:
        super().__init__()
        timm = _import_timm()
        resolved = _from_folder(config) if Path(config.model_name).is_dir() else config
        _check_name(timm, resolved.model_name)
        self.config = config
        self.model = _create(timm, resolved)
        # Models with a hidden head layer (MobileNetV3...) return that, not num_features.
        self.width = int(getattr(self.model, "head_hidden_size", None)
                         or self.model.num_features)
        self.freeze_inner(self.model, config.freeze)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The model's pooled features of ``images``."""
        with self.grad_context():
            out = self.model(images.float())
        if out.dim() != 2 or out.shape[1] != self.width:
            raise ValueError(f"image_timm: {self.config.model_name!r} returned "
                             f"{tuple(out.shape)}, expected [B, {self.width}] pooled features")
        return out
