"""LoRA adapters and partial freezing of encoders (``peft``), from a recipe's modality keys.

A recipe's modality takes::

    modalities:
      image:
        encoder: image_hf
        lora: {r: 8, alpha: 16, dropout: 0.05, target_modules: [q_proj, v_proj]}
      text:
        encoder: text_hf
        freeze: true
        trainable: [layers.5, pooler]     # sub-modules left trainable (name prefixes)

- ``lora``: ``peft`` injects low-rank adapters into the named linear layers (or every
  linear layer: ``target_modules: all-linear``); the encoder's own weights are frozen, so
  only the adapters (and the projection heads) reach the optimiser. The model folder keeps
  the adapted weights in ``model.safetensors`` (a reload rebuilds the same adapters) and the
  adapters alone in ``adapters.safetensors``; :func:`merge_lora` folds them into the base
  weights for export.
- ``freeze: true`` with ``trainable``: every weight of the encoder is frozen except those of
  the sub-modules named (open_clip's ``--lock-image-unlocked-groups``).

``peft`` is imported only when a recipe asks for LoRA.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymodal.errors import ConfigError, PluginError
from anymodal.utils.params import build_params

__all__ = ["ADAPTERS_FILE", "LoraOptions", "adapt_encoder", "adapter_state_dict",
           "merge_lora", "save_adapters"]

ADAPTERS_FILE = "adapters.safetensors"
LORA_MARK = "lora_"


@dataclass
class LoraOptions:
    """The ``lora`` key of a modality.

    Args:
        r: rank of the adapters.
        alpha: scaling numerator (the update is ``alpha / r * B @ A``).
        dropout: dropout on the adapters' input, in training.
        target_modules: names (or name suffixes) of the linear layers to adapt, or
            ``["all-linear"]``.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


def _inject(encoder: nn.Module, options: LoraOptions, where: str) -> None:
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise PluginError(f"{where}.lora needs the package peft; install it with: "
                          "pip install 'anymodal[lora]'") from None
    targets: Any = options.target_modules
    if list(targets) == ["all-linear"]:
        targets = "all-linear"
    config = LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=targets)
    try:
        inject_adapter_in_model(config, encoder)
    except ValueError as exc:
        linear = [n for n, m in encoder.named_modules() if isinstance(m, nn.Linear)]
        raise ConfigError(f"{where}.lora.target_modules {options.target_modules}: "
                          f"{str(exc).splitlines()[0]} (linear layers: {', '.join(linear)})"
                          ) from None


def _leave_trainable(encoder: nn.Module, prefixes: Sequence[str], where: str) -> None:
    names = [n for n, _ in encoder.named_modules() if n]
    for prefix in prefixes:
        if prefix not in names:
            close = difflib.get_close_matches(prefix, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}.trainable: the encoder has no sub-module {prefix!r}{hint}")
    for name, param in encoder.named_parameters():
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            param.requires_grad_(True)


def adapt_encoder(encoder: nn.Module, modality: Any, where: str) -> bool:
    """Apply a modality's ``lora`` and ``trainable`` keys to its encoder, in place.

    Args:
        encoder: the freshly built encoder.
        modality: the recipe's modality section (``lora``, ``trainable``, ``freeze``).
        where: how errors name the section (``"modalities.image"``).

    Returns:
        Whether the encoder is partly trainable (adapters or named sub-modules), i.e. it
        must not be frozen as a whole.

    Raises:
        ConfigError: bad ``lora`` options, targets that match no layer, ``trainable``
            without ``freeze``, or a sub-module name the encoder lacks.
    """
    lora = dict(modality.get("lora") or {})
    trainable = list(modality.get("trainable") or [])
    if trainable and not modality.get("freeze"):
        raise ConfigError(f"{where}.trainable names the sub-modules left trainable in a "
                          "frozen encoder; set freeze: true with it")
    if not lora and not trainable:
        return False
    encoder.requires_grad_(False)
    if lora:
        _inject(encoder, build_params(LoraOptions, lora, f"{where}.lora"), where)
        for name, param in encoder.named_parameters():
            param.requires_grad_(LORA_MARK in name)
    _leave_trainable(encoder, trainable, where)
    return True


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors of ``model`` (names as in its state dict)."""
    return {name: tensor.detach().contiguous().cpu()
            for name, tensor in model.state_dict().items() if LORA_MARK in name}


def save_adapters(model: nn.Module, directory: str | os.PathLike[str]) -> Path | None:
    """Write ``adapters.safetensors`` (the LoRA tensors alone) into a model folder.

    Written to a temporary name and renamed. Returns its path, or ``None`` when the model
    has no adapter.
    """
    from safetensors.torch import save_file

    tensors = adapter_state_dict(model)
    if not tensors:
        return None
    path = Path(directory) / ADAPTERS_FILE
    partial = path.with_name(path.name + ".tmp")
    save_file(tensors, str(partial), metadata={"format": "pt", "kind": "lora"})
    os.replace(partial, path)
    return path


def merge_lora(model: Any) -> int:
    """Fold every LoRA adapter of ``model`` into its base layer, and drop the adapters.

    The model's config forgets its ``lora`` keys, so that the saved folder is a plain model
    (same outputs, no ``peft`` needed to load it). Returns how many layers were merged.
    """
    from peft.tuners.lora import LoraLayer

    merged = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                child.merge()
                setattr(parent, child_name, child.get_base_layer())
                merged += 1
    config = getattr(model, "config", None)
    if merged and config is not None and "modalities" in config:
        for section in config.modalities.values():
            if isinstance(section, MutableMapping) and section.get("lora"):
                section["lora"] = {}
    return merged
