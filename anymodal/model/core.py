"""MultiModalModel: one encoder and projection head per modality, a shared embedding space.

A saved model is a folder (format in :mod:`anymodal.model.io`): ``config.yaml``,
``model.safetensors`` and ``anymodal.json``. The model owns saving and loading
(:meth:`MultiModalModel.save_pretrained`, :meth:`MultiModalModel.from_pretrained`); the
format module knows only files.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.checkpoint import checkpoint

from anymodal._version import __version__
from anymodal.config import ExperimentConfig, load_config, plain, to_yaml
from anymodal.data.guard import NONFINITE_KEY, embed_finite
from anymodal.errors import ArtifactError, ConfigError
from anymodal.model import io
from anymodal.model.embed import embed_items
from anymodal.model.lora import adapt_encoder, save_adapters
from anymodal.model.provenance import check_plugins, provenance
from anymodal.objectives.row_state import batch_rows
from anymodal.plugin_host.manager import create_encoder, create_objective, get_modality
from anymodal.types import PRESENT_KEY, Batch, ModalitySpec

__all__ = ["DEFAULT_LOGIT_SCALE", "MultiModalModel", "ProjectionHead", "build_model", "load_model",
           "save_model"]

#: The initial logit scale of a recipe that sets none and an objective that prefers none
#: (CLIP's temperature 0.07).
DEFAULT_LOGIT_SCALE = 1 / 0.07

# model -> (key of each tensor's storage and version counter, fingerprint): hashing every
# weight costs a pass over the model, and an optimiser step bumps the version counter.
_FINGERPRINTS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], str]] = (
    weakref.WeakKeyDictionary()
)


class ProjectionHead(nn.Module):
    """Maps an encoder's features to the shared space.

    With ``center``, each training batch's mean output is subtracted (with its gradient,
    as BatchNorm centres, without scaling) before the embedding is normalised, and a
    running mean of those batch means (an exponential moving average) is subtracted in
    evaluation. Why: fresh encoders put every row of a modality in nearly one direction
    (mean pairwise cosine 0.8-0.9 on the digits study). For an objective that is not
    invariant to a shift shared by all of a row's logits (sigmoid, multi-view), the
    positives then pull every row towards the other modality's *mean*: the loss falls
    fastest by collapsing each modality onto one vector, and the collapse is a fixed point
    (no row differs from another, so no gradient tells them apart). Subtracting the batch
    mean with its gradient leaves the head no shared direction to grow; subtracting only a
    running mean (no gradient) lags behind, and the head outruns it within ten steps
    (measured: ``benchmarks/results/objective_curves.md``).

    The training output of a row depends on the other rows of its (micro-)batch, as with
    BatchNorm: gradient caching and several processes centre each micro-batch / process
    by its own mean.

    Args:
        width: the encoder's output width.
        embed_dim: the shared embedding width.
        kind: ``linear`` (no bias, as CLIP) or ``mlp`` (two layers with GELU).
        center: subtract the batch mean in training, its running mean in evaluation.
        momentum: how much of the running mean each training batch keeps.

    Shapes:
        input ``[B, width]``, output ``[B, embed_dim]``.
    """

    center: torch.Tensor
    batches_seen: torch.Tensor

    def __init__(self, width: int, embed_dim: int, kind: str = "linear",
                 center: bool = False, momentum: float = 0.9) -> None:
        super().__init__()
        if kind == "linear":
            self.net: nn.Module = nn.Linear(width, embed_dim, bias=False)
        elif kind == "mlp":
            self.net = nn.Sequential(
                nn.Linear(width, width), nn.GELU(), nn.Linear(width, embed_dim)
            )
        else:
            raise ConfigError(f"model.head is {kind!r}; valid choices: linear, mlp")
        self.momentum = momentum
        self.centered = center
        if center:
            self.register_buffer("center", torch.zeros(embed_dim))
            self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project encoder features into the shared space (centred when asked)."""
        out = self.net(features)
        if not self.centered:
            return out
        if not (self.training and out.shape[0] > 1):
            return out - self.center.to(out.dtype)
        mean = out.mean(0)
        # Only a pass that back-propagates moves the running mean: gradient caching's
        # first, gradient-free pass over the same rows must not count them twice.
        if torch.is_grad_enabled():
            with torch.no_grad():
                # The first batch sets the running mean itself (no pull towards zero).
                keep = self.momentum if int(self.batches_seen) > 0 else 0.0
                self.center.mul_(keep).add_(mean.detach().float(), alpha=1.0 - keep)
                self.batches_seen.add_(1)
        return out - mean


class MultiModalModel(nn.Module):
    """Encoders, projection heads, missing-modality embeddings, logit scale and objective.

    Args:
        config: an experiment config (``load_config`` output, or an ``ExperimentConfig``).

    Attributes:
        modalities: modality key -> the bound :class:`ModalitySpec` (options applied).
        encoders, heads: per modality key.
        missing: per modality key, the learned embedding used for rows without it.
        objective: the training objective; its ``score`` ranks retrieval candidates.
    """

    def __init__(self, config: DictConfig | ExperimentConfig) -> None:
        super().__init__()
        if not isinstance(config, DictConfig):
            config = OmegaConf.structured(config)
        assert isinstance(config, DictConfig)  # for the type checker: structured() makes one
        self.config: DictConfig = config
        self.embed_dim = int(config.model.embed_dim)
        self.normalize = bool(config.model.normalize)
        self.modalities: dict[str, ModalitySpec] = {}
        self.encoder_names: dict[str, str] = {}
        self.encoders = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.missing = nn.ParameterDict()
        self.adapted: set[str] = set()
        self.saved_config_yaml: str | None = None  # set by from_pretrained
        objective = create_objective(config.objective.name, **plain(config.objective.params))
        # model.center null (the default): the objective's choice (``center_default``).
        center = config.model.center
        if center is None:
            center = bool(getattr(objective, "center_default", False))
        for key, mod in config.modalities.items():
            kind = mod.modality or key
            spec = get_modality(kind, **plain(mod.options))
            name = mod.encoder or spec.default_encoder
            encoder = create_encoder(name, spec, **plain(mod.params))
            if adapt_encoder(encoder, mod, f"modalities.{key}"):  # LoRA / partial freezing
                self.adapted.add(key)
            self.modalities[key] = spec
            self.encoder_names[key] = name
            self.encoders[key] = encoder
            self.heads[key] = ProjectionHead(encoder.width, self.embed_dim, config.model.head,
                                             center=bool(center))
            self.missing[key] = nn.Parameter(torch.randn(self.embed_dim) * 0.02)
            if mod.freeze and key not in self.adapted:
                encoder.requires_grad_(False)
                encoder.eval()
        self.frozen = {key for key, mod in config.modalities.items()
                       if mod.freeze and key not in self.adapted}
        # Keys loaded and frozen whole by train.init_from (anymodal.training.init_from):
        # their heads stay in eval mode too, so that a centred head's running mean holds.
        self.bound: set[str] = set()
        # model.logit_scale_init null (the default): the objective's, else CLIP's 1/0.07.
        scale = config.model.logit_scale_init
        if scale is None:
            scale = getattr(objective, "logit_scale_default", DEFAULT_LOGIT_SCALE)
        init = math.log(float(scale))
        self.log_logit_scale = nn.Parameter(
            torch.tensor(init), requires_grad=bool(config.model.learn_logit_scale)
        )
        self.logit_scale_max = float(config.model.logit_scale_max)
        self.objective = objective

    # -- modes -----------------------------------------------------------------------------

    def train(self, mode: bool = True) -> MultiModalModel:
        """As ``nn.Module.train``, but frozen encoders stay in eval mode."""
        super().train(mode)
        for key in self.frozen:
            self.encoders[key].eval()
        for key in self.bound:
            self.heads[key].eval()
        return self

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.parameters()).device

    def logit_scale(self) -> torch.Tensor:
        """The similarity multiplier exp(log_scale), clamped at ``logit_scale_max``."""
        return self.log_logit_scale.clamp(max=math.log(self.logit_scale_max)).exp()

    # -- encoding --------------------------------------------------------------------------

    def encode(self, key: str, collated: Any) -> torch.Tensor:
        """Embed a collated batch of modality ``key`` (present rows only).

        Shapes:
            output ``[B_present, embed_dim]``, L2-normalised when ``model.normalize``.
        """
        if key not in self.encoders:
            raise KeyError(f"the model has no modality {key!r}; it has {sorted(self.encoders)}")
        encoder = self.encoders[key]
        use_ckpt = (self.config.model.gradient_checkpointing and self.training
                    and key not in self.frozen and torch.is_grad_enabled())
        cached = getattr(collated, "anymodal_features", None)
        if cached is not None:  # a frozen encoder's features, from the feature cache
            features = cached(encoder)
        else:
            features = (checkpoint(encoder, collated, use_reentrant=False) if use_ckpt
                        else encoder(collated))
        embedding = self.heads[key](features.float())
        return self._normalise(embedding)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=-1) if self.normalize else x

    def forward(self, batch: Batch, return_loss: bool = False) -> dict[str, torch.Tensor]:
        """Embed every modality of ``batch``; rows without it get the learned missing embedding.

        With ``return_loss``, apply the objective instead and return its output
        (``{"loss": scalar, named parts...}``): training calls the model this way so that a
        DistributedDataParallel wrapper sees the whole computation.

        Shapes:
            output: modality key -> ``[B, embed_dim]`` for every key present in ``batch``.
        """
        if return_loss:
            return self.compute_loss(batch)
        return self.embed_batch(batch)

    def embed_batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Embed every modality of a collated batch (see :meth:`forward`)."""
        present: Mapping[str, torch.Tensor] = batch.get(PRESENT_KEY, {})
        out: dict[str, torch.Tensor] = {}
        for key in self.encoders:
            if key not in batch and key not in present:
                continue
            mask = present.get(key)
            rows = None if mask is None else mask.to(self.device)
            if rows is not None and not bool(rows.any()):
                out[key] = self._normalise(self.missing[key]).expand(rows.numel(), -1)
                continue
            embedding = self.encode(key, batch[key])
            if rows is not None and not bool(rows.all()):
                filler = self._normalise(self.missing[key]).to(embedding.dtype)
                full = filler.expand(rows.numel(), -1)
                index = rows.nonzero().squeeze(1)
                embedding = full.index_put((index,), embedding)
            out[key] = embedding
        return out

    def compute_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Embed ``batch`` and apply the objective: ``{"loss": scalar, named parts...}``.

        Rows whose embeddings are NaN or infinite (a finite input that overflows an
        encoder) are left out of the loss while two rows remain; the output then also
        holds ``nonfinite_rows`` (:func:`anymodal.data.guard.nonfinite_rows`).
        """
        # Rows whose embeddings overflow are embedded again without them (data.guard).
        batch, embeddings, flags = embed_finite(self.embed_batch, batch, self,
                                                list(self.encoders))
        present = {k: v.to(self.device) for k, v in batch.get(PRESENT_KEY, {}).items()
                   if k in embeddings}
        # An objective with per-row state (global_contrastive) gets the embedded rows' indices.
        with batch_rows(self.objective, batch):
            out = self.objective(embeddings, self.logit_scale(), present or None)
        return out if flags is None else {**out, NONFINITE_KEY: flags}

    def missing_embeddings(self, absent: Iterable[str]) -> dict[str, torch.Tensor]:
        """The learned missing embeddings of ``absent`` modalities, as training used them.

        Shapes:
            returns ``{m: [embed_dim]}``.
        """
        return {key: self._normalise(self.missing[key]).detach() for key in absent}

    def absent_modalities(self, query: Iterable[str], target: str | None) -> list[str]:
        """The model's modalities in neither ``query`` nor ``target``.

        Raises:
            ConfigError: ``target`` is None and more than one modality is absent while the
                objective scores with the missing embeddings (``query_rule == "product"``).
        """
        query = list(query)
        if target is None:
            rest = [key for key in self.modalities if key not in query]
            if len(rest) > 1 and getattr(self.objective, "query_rule", None) == "product":
                raise ConfigError(
                    f"objective {self.config.objective.name!r} scores a query of {query} with "
                    f"the missing embeddings of the absent modalities, and the candidates "
                    f"could be any of {rest}: pass target=<the candidates' modality>")
            target = rest[0] if len(rest) == 1 else None
        return [key for key in self.modalities if key not in query and key != target]

    @torch.no_grad()
    def score(self, query: dict[str, torch.Tensor], candidates: torch.Tensor,
              target: str | None = None) -> torch.Tensor:
        """Rank ``candidates`` for each query by the objective's own rule; higher is better.

        The rule is ``objective.score``. A query that lacks some of the model's
        modalities is scored the way training scored such rows: the objective gets the
        learned missing embeddings of the modalities in neither the query nor ``target``
        (Symile multiplies them in).

        Args:
            query: the query embeddings of one or more modalities, ``{m: [Q, D]}``.
            candidates: the candidate embeddings, ``[C, D]``.
            target: the candidates' modality; may be left out when it is the only
                modality the query lacks, or when the objective ignores missing embeddings.
        """
        missing = self.missing_embeddings(self.absent_modalities(query, target))
        if not missing:  # objectives written before ``missing`` existed keep working
            return self.objective.score(query, candidates, self.logit_scale())
        return self.objective.score(query, candidates, self.logit_scale(), missing=missing)

    # -- saving ----------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write the model folder (``config.yaml``, ``model.safetensors``, ``anymodal.json``).

        The folder is replaced crash-safely (:mod:`anymodal.utils.atomic`); returns its path.

        Args:
            directory: the model folder (replaced if it exists).
        """
        manifest = {"anymodal_version": __version__, "torch_version": torch.__version__,
                    "fingerprint": self.fingerprint(), **provenance(self)}
        # The LoRA tensors alone go beside the full weights, inside the same atomic swap.
        return io.write_model_folder(directory, self.config_yaml(), self, manifest,
                                     extra=lambda staging: save_adapters(self, staging))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str],
                        map_location: str | torch.device = "cpu") -> MultiModalModel:
        """Rebuild a model from its folder: plugins checked first, then config and weights.

        Args:
            directory: a folder written by :meth:`save_pretrained`.
            map_location: the device the model is loaded onto.
        """
        folder = Path(directory)
        manifest = io.read_manifest(folder)
        check_plugins(manifest, folder)
        text = (folder / io.CONFIG_FILE).read_text(encoding="utf-8")
        config = load_config(folder / io.CONFIG_FILE)
        saved = OmegaConf.create(text)
        if not (isinstance(saved, DictConfig) and "center" in saved.get("model", {})):
            # Saved before model.center existed: trained uncentred, whatever the objective's
            # default is now (the folder has no centring buffers).
            config.model.center = False
        model = cls(config)
        # The model's identity is the config as saved: re-resolving it adds the defaults of
        # options introduced since, which must not make an older folder unloadable.
        model.saved_config_yaml = text
        state = io.read_weights(folder, map_location)
        weights, config_file = folder / io.WEIGHTS_FILE, folder / io.CONFIG_FILE
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shapes differ from what config.yaml builds
            raise ConfigError(f"{weights} does not match {config_file}: "
                              f"{str(exc).splitlines()[-1].strip()}") from None
        # safetensors drops tensors that share storage; they come back through their twin.
        missing = [k for k in missing if k not in _shared_names(model)]
        if missing or unexpected:
            raise ConfigError(f"{weights} does not match {config_file}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        if model.fingerprint() != manifest["fingerprint"]:
            raise ArtifactError(
                f"{folder}: the loaded config and weights have fingerprint "
                f"{model.fingerprint()}, {io.MANIFEST_FILE} records {manifest['fingerprint']!r} "
                "(the files do not belong together)")
        model.to(map_location)
        model.eval()
        return model

    def config_yaml(self) -> str:
        """The config as YAML.

        For a loaded model, the text it was saved with, so that options added by a later
        anymodal (resolved to their defaults) do not change the model's identity; else
        the resolved config.
        """
        return self.saved_config_yaml or to_yaml(self.config)

    def fingerprint(self) -> str:
        """A hash of the config and weights: indexes built by this model carry it.

        Computed by :func:`anymodal.model.io.fingerprint` and cached until a weight changes.
        A model loaded from a folder hashes the ``config.yaml`` text it was saved with.
        """
        key = tuple((name, t.data_ptr(), t._version) for name, t in self.state_dict().items())
        cached = _FINGERPRINTS.get(self)
        if cached is not None and cached[0] == key:
            return cached[1]
        value = io.fingerprint(self.config_yaml(), self.state_dict())
        _FINGERPRINTS[self] = (key, value)
        return value

    # -- embedding raw items (retrieval) ----------------------------------------------------

    def embed(self, key: str, items: Iterable[Any], batch_size: int = 64,
              progress: bool = True, on_error: str = "raise") -> torch.Tensor:
        """Embed raw items (paths, bytes, strings, tensors) of modality ``key``.

        Items go through the plugin's ``load``/``transform(train=False)``/``collate`` in
        batches, in eval mode, on the model's device (:func:`anymodal.model.embed_items`).

        Shapes:
            output ``[n_ok, embed_dim]``.
        """
        return embed_items(self, key, items, batch_size=batch_size, progress=progress,
                           on_error=on_error)


def build_model(recipe: str | None = None, overrides: Iterable[str] | None = None
                ) -> MultiModalModel:
    """A fresh model from a recipe path and ``key=value`` overrides."""
    return MultiModalModel(load_config(recipe, overrides))


def load_model(directory: str | os.PathLike[str], map_location: str | torch.device = "cpu"
               ) -> MultiModalModel:
    """Load a folder written by :meth:`MultiModalModel.save_pretrained`.

    Args:
        directory: the model folder.
        map_location: the device the model is loaded onto.
    """
    return MultiModalModel.from_pretrained(directory, map_location)


def save_model(model: MultiModalModel, directory: str | os.PathLike[str]) -> Path:
    """``model.save_pretrained(directory)``; returns the folder's path.

    Args:
        model: the model to save.
        directory: the model folder (replaced if it exists).
    """
    return model.save_pretrained(directory)


def _shared_names(model: torch.nn.Module) -> set[str]:
    """Names of tensors whose storage another, earlier tensor already holds (tied weights)."""
    seen: dict[int, str] = {}
    shared: set[str] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        ptr = tensor.data_ptr()
        if ptr in seen and ptr != 0:
            shared.add(name)
        seen[ptr] = name
    return shared
