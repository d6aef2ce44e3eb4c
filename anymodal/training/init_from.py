"""``train.init_from``: add modalities to a trained embedding space (progressive binding).

A recipe names a saved model folder (a run's ``model/``)::

    train:
      init_from: runs/image_text/model
    modalities:
      audio: {encoder: audio_cnn}     # the new modality; image and text come from the model

The run builds the saved model's modalities exactly as saved (a recipe may restate them, but
not contradict them), loads their weights through :func:`anymodal.load_model` (checksums,
plugins and fingerprint checked), and freezes everything they had: encoders, projection
heads (kept in eval mode, so a centred head's running mean holds) and missing-modality
embeddings. The recipe's new modality keys start fresh and are the only ones trained, so
the old modalities embed every input bit for bit as before (OneEncoder, ViT-Lens,
ImageBind's frozen towers). The logit scale follows ``train.init_from_logit_scale``:
``frozen`` (the saved value, not trained), ``train`` (the saved value, then learned) or
``recipe`` (``model.logit_scale_init``, as a fresh model). The objective is the recipe's
and starts fresh (a SigLIP bias, learned per-pair scales).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig

from anymodal.authoring import bind_encoder_params
from anymodal.config import load_config, plain, validate_config
from anymodal.errors import AnymodalError, ConfigError
from anymodal.model import MultiModalModel, load_model
from anymodal.model.io import CONFIG_FILE, MANIFEST_FILE
from anymodal.model.lora import LoraOptions
from anymodal.plugin_host.manager import get_encoder_spec, get_modality
from anymodal.utils.params import build_params

__all__ = ["LOGIT_SCALE_CHOICES", "MODEL_KEYS", "check_init_from", "initial_model",
           "load_source"]

logger = logging.getLogger("anymodal.training")

# The model options that shape every embedding: they must be the saved model's.
# (``model.center`` too, compared as built: ``null`` means the objective's choice.)
MODEL_KEYS = ("embed_dim", "head", "normalize")
LOGIT_SCALE_CHOICES = ("frozen", "train", "recipe")


def initial_model(config: DictConfig) -> tuple[DictConfig, MultiModalModel]:
    """The run's model: fresh, or with ``train.init_from``'s modalities loaded and frozen.

    Args:
        config: the validated recipe.

    Returns:
        ``(config, model)``: with ``init_from``, the config holds the saved model's
        modalities first (as saved, or as restated by the recipe), then the recipe's new ones.

    Raises:
        ConfigError: ``train.init_from`` is not a model folder, the recipe contradicts the
            saved model (naming the key), or it adds no modality.
        ArtifactError: the model folder is damaged (checksums, fingerprint).
    """
    path = config.train.get("init_from")
    if not path:
        return config, MultiModalModel(config)
    source = load_source(path)
    check_compatible(config, source.config, Path(path))
    merged = merged_config(config, source.config)
    model = MultiModalModel(merged)
    bind_loaded(model, source, Path(path), str(config.train.init_from_logit_scale))
    return merged, model


def load_source(path: str | Path) -> MultiModalModel:
    """Load the model folder ``path`` (verified by :func:`anymodal.load_model`).

    The global random state is left as it was: building the saved model draws fresh
    weights before its own replace them, and the run's seed must not depend on that.

    Raises:
        ConfigError: ``path`` is not a model folder.
        AnymodalError: the folder's own error (damaged file, missing plugin), prefixed by
            the key.
    """
    folder = _model_folder(path)
    try:
        with torch.random.fork_rng(devices=[]):
            return load_model(folder)
    except AnymodalError as exc:
        raise type(exc)(f"train.init_from: {exc}") from None


def check_init_from(config: DictConfig) -> None:
    """Refuse a bad ``train.init_from`` before the run claims its output folder.

    Reads only the saved ``config.yaml`` (the weights are loaded and verified when the run
    builds its model), so that a typo costs nothing and leaves no run behind.

    Args:
        config: the validated recipe.

    Raises:
        ConfigError: not a model folder, or a recipe that contradicts the saved model.
    """
    path = config.train.get("init_from")
    if not path:
        return
    folder = _model_folder(path)
    try:
        saved = load_config(folder / CONFIG_FILE)
    except AnymodalError as exc:
        raise type(exc)(f"train.init_from: {folder / CONFIG_FILE}: {exc}") from None
    check_compatible(config, saved, folder)


def _model_folder(path: str | Path) -> Path:
    folder = Path(path)
    if not (folder / MANIFEST_FILE).is_file():
        hint = (f"; did you mean its model folder {folder / 'model'}?"
                if (folder / "model" / MANIFEST_FILE).is_file() else
                "; expected a folder written by save_model, such as a run's model/")
        what = "does not exist" if not folder.exists() else f"has no {MANIFEST_FILE}"
        raise ConfigError(f"train.init_from: {folder} is not a model folder ({what}){hint}")
    return folder


def _resolved(section: Any, key: str) -> dict[str, Any]:
    """What builds modality ``key``'s encoder, with every default filled in."""
    kind = str(section.modality or key)
    spec = get_modality(kind, **plain(section.options))
    name = str(section.encoder or spec.default_encoder)
    encoder = get_encoder_spec(name)
    params = build_params(encoder.config_cls,
                          bind_encoder_params(encoder, spec, plain(section.params)),
                          f"encoder {name!r}")
    lora = plain(section.lora)
    return {
        "modality": kind, "encoder": name,
        "options": _fields(spec.config), "params": _fields(params),
        "lora": _fields(build_params(LoraOptions, lora, "lora")) if lora else {},
        "trainable": [str(t) for t in section.trainable or []],
    }


def _fields(config: Any) -> dict[str, Any]:
    """A config instance's fields as a dict (a dataclass, as build_params makes, or not)."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(vars(config))


def _differences(recipe: dict[str, Any], saved: dict[str, Any], prefix: str
                 ) -> list[tuple[str, Any, Any]]:
    """``(dotted key, recipe value, saved value)`` of every leaf that differs."""
    out: list[tuple[str, Any, Any]] = []
    for name in sorted(set(recipe) | set(saved)):
        a, b = recipe.get(name), saved.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}.{name}")
        elif a != b:
            out.append((f"{prefix}.{name}", a, b))
    return out


def check_compatible(config: DictConfig, saved: DictConfig, path: Path) -> None:
    """Refuse a recipe that contradicts the saved model it starts from.

    Args:
        config: the recipe.
        saved: the saved model's config.
        path: the model folder (named in messages).

    Raises:
        ConfigError: naming the first contradicting key, both values, and the fix.
    """
    for name in MODEL_KEYS:
        ours, theirs = config.model[name], saved.model[name]
        if ours != theirs:
            raise ConfigError(
                f"model.{name}: the recipe says {ours!r}, but train.init_from's model {path} "
                f"was trained with {theirs!r}; set model.{name}: {theirs} (it shapes the "
                "frozen modalities' embeddings)")
    for key in config.modalities:
        if key not in saved.modalities:
            continue
        found = _differences(_resolved(config.modalities[key], str(key)),
                             _resolved(saved.modalities[key], str(key)), f"modalities.{key}")
        if found:
            where, ours, theirs = found[0]
            raise ConfigError(
                f"{where}: the recipe says {ours!r}, but train.init_from's model {path} has "
                f"{theirs!r}; its modality {key!r} is loaded as saved and frozen (leave "
                f"modalities.{key} out of the recipe to take it as saved)")
    if all(key in saved.modalities for key in config.modalities):
        raise ConfigError(
            f"train.init_from: the recipe adds no modality to those of {path} "
            f"({', '.join(map(str, saved.modalities))}), which are all frozen; add a new "
            "modality key to bind")


def merged_config(config: DictConfig, saved: DictConfig) -> DictConfig:
    """The recipe with the saved model's modalities first, then its own new ones.

    Saved modalities keep their order (synthetic rows and missing embeddings follow it);
    a modality the recipe restates keeps the recipe's section (already checked equal).

    Args:
        config: the recipe (not modified).
        saved: the saved model's config.
    """
    merged = copy.deepcopy(config)
    sections = {str(key): config.modalities.get(key, section)
                for key, section in saved.modalities.items()}
    sections.update({str(key): section for key, section in config.modalities.items()
                     if key not in saved.modalities})
    merged.modalities = sections
    validate_config(merged)
    return merged


def bind_loaded(model: MultiModalModel, source: MultiModalModel, path: Path,
                logit_scale: str) -> None:
    """Copy the saved modalities' weights into ``model`` and freeze them, in place.

    Args:
        model: the run's fresh model (built from :func:`merged_config`).
        source: the loaded saved model.
        path: its folder (named in messages).
        logit_scale: ``frozen``, ``train`` or ``recipe`` (``train.init_from_logit_scale``).

    Raises:
        ConfigError: a saved weight does not fit the module the config builds, or the
            frozen logit scale is above ``model.logit_scale_max``.
    """
    for key in source.modalities:
        _check_centring(model, source, key)
        for part, target, saved in (("encoder", model.encoders[key], source.encoders[key]),
                                    ("head", model.heads[key], source.heads[key])):
            try:
                target.load_state_dict(saved.state_dict(), strict=True)
            except RuntimeError as exc:
                raise ConfigError(f"modalities.{key}: the {part} saved in {path} does not fit "
                                  f"the one built from its config: "
                                  f"{str(exc).splitlines()[-1].strip()}") from None
            target.requires_grad_(False)
        with torch.no_grad():
            model.missing[key].copy_(source.missing[key])
        model.missing[key].requires_grad_(False)
        model.frozen.add(key)  # the encoder stays in eval mode (dropout, batch norm)
        model.bound.add(key)  # and so does the head (a centred head's running mean)
    _bind_logit_scale(model, source, logit_scale)
    if not dist.is_initialized() or dist.get_rank() == 0:  # once per run, not per process
        logger.info("train.init_from %s (fingerprint %s): %s loaded and frozen; training %s",
                    path, source.fingerprint(), ", ".join(source.modalities),
                    ", ".join(k for k in model.modalities if k not in source.modalities))


def _check_centring(model: MultiModalModel, source: MultiModalModel, key: str) -> None:
    """Refuse heads centred otherwise than the saved ones (``model.center``, as resolved)."""
    ours = bool(getattr(model.heads[key], "centered", False))
    theirs = bool(getattr(source.heads[key], "centered", False))
    if ours != theirs:
        def kind(centred: bool) -> str:
            return "centred" if centred else "uncentred"

        raise ConfigError(
            f"model.center: the recipe builds {kind(ours)} heads, but train.init_from's model "
            f"has {kind(theirs)} ones; set model.center: {str(theirs).lower()} (it shapes the "
            "frozen modalities' embeddings)")


def _bind_logit_scale(model: MultiModalModel, source: MultiModalModel, mode: str) -> None:
    if mode == "recipe":
        return
    with torch.no_grad():
        model.log_logit_scale.copy_(source.log_logit_scale)
    if mode == "frozen":
        # The same clamp as training's (anymodal.training.policies), in the same dtype.
        clamped = source.log_logit_scale.detach().clamp(max=math.log(model.logit_scale_max))
        if not torch.equal(clamped, source.log_logit_scale.detach()):
            saved = math.exp(float(source.log_logit_scale.detach()))
            raise ConfigError(
                f"model.logit_scale_max is {model.logit_scale_max}, below the frozen logit "
                f"scale {saved:.4g} of train.init_from's model; raise it, or set "
                "train.init_from_logit_scale: train")
        model.log_logit_scale.requires_grad_(False)
