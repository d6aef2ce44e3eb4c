"""Experiment configs: OmegaConf structured dataclasses, YAML recipes and overrides.

``load_config(path, overrides)`` merges schema <- YAML <- ``key=value`` overrides, then
checks what the schema cannot: that every modality, encoder and objective exists, and that
their params fit their own config dataclasses. Every problem is a :class:`ConfigError`
naming the key and the valid choices.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from anymodal.authoring import bind_encoder_params
from anymodal.errors import ConfigError, PluginError
from anymodal.plugin_host.manager import get_encoder_spec, get_modality, get_plugin_manager
from anymodal.plugin_host.registry import suggest
from anymodal.utils.overrides import apply_overrides, check_keys
from anymodal.utils.params import build_params

__all__ = [
    "DataConfig",
    "DatasetConfig",
    "EvalConfig",
    "ExperimentConfig",
    "LoggingConfig",
    "ModalityConfig",
    "ModalityDropoutConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "RowsConfig",
    "SourceConfig",
    "TrainConfig",
    "check_ranges",
    "load_config",
    "plain",
    "to_yaml",
    "validate_config",
]


@dataclass
class ModalityConfig:
    """One modality of the experiment, under a key of ``modalities``.

    Args:
        modality: the registered modality type; defaults to the key, so that two keys
            (``front``, ``rear``) can share one type (``image``).
        encoder: encoder name; defaults to the modality's ``default_encoder``.
        params: the encoder's params (checked against its config dataclass).
        options: the modality's options (sample rate, frame count...).
        freeze: no gradient to the encoder, which stays in eval mode.
        lr_mult: learning-rate multiplier of the encoder and its head.
        lora: LoRA adapters on the encoder, ``{r, alpha, dropout, target_modules}``
            (:mod:`anymodal.model.lora`); only the adapters train. Empty: none.
        trainable: with ``freeze``, sub-modules of the encoder left trainable (name
            prefixes such as ``layers.5``).
    """

    modality: str | None = None
    encoder: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    freeze: bool = False
    lr_mult: float = 1.0
    lora: dict[str, Any] = field(default_factory=dict)
    trainable: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    """The model: embedding width, projection head and logit scale.

    Args:
        embed_dim: width of the shared embedding space.
        head: projection head, ``linear`` or ``mlp``.
        normalize: L2-normalise the embeddings.
        logit_scale_init: initial multiplier of the similarities (1/temperature); ``null``:
            the objective's (``logit_scale_default``: 5 for ``mv_infonce``), else 1/0.07.
        logit_scale_max: the learned multiplier is clamped at this value.
        learn_logit_scale: learn the multiplier, or keep it fixed.
        gradient_checkpointing: recompute encoder activations in the backward pass.
        center: subtract each head's batch mean (its running mean in evaluation) before
            normalising (see ``anymodal.model.core.ProjectionHead``): fresh encoders embed
            every row in nearly one direction, where sigmoid and multi-view objectives
            collapse. ``null``: the objective's default (on for ``siglip``, ``mv_infonce``).
    """

    embed_dim: int = 128
    head: str = "linear"
    normalize: bool = True
    logit_scale_init: float | None = None
    logit_scale_max: float = 100.0
    learn_logit_scale: bool = True
    gradient_checkpointing: bool = False
    center: bool | None = None


@dataclass
class ObjectiveConfig:
    """The objective: a registered name and its params (checked against its config).

    Args:
        name: the registered objective (``anymodal plugins`` lists them, ``anymodal
            describe NAME`` shows its params).
        params: the objective's params, checked against its config dataclass.
    """

    name: str = "clip"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RowsConfig:
    """Where a set of rows comes from: what a split and a mixture's source share.

    Args:
        kind: ``synthetic`` (each plugin's ``synthesize``) or ``manifest`` (JSONL/CSV rows
            of paths); a split also takes ``webdataset`` and ``mixture``.
        path: the manifest file.
        size: number of rows of a synthetic set.
        seed: seed of a synthetic set (train and val, or two sources, must differ).
        missing: synthetic only: per modality key, the fraction of rows without it.
        label_key: the manifest column holding class labels (optional).
        root: the folder a manifest's paths may point into (``null``: the manifest's own
            folder); a path that leaves it is a bad row.
    """

    kind: str = "synthetic"
    path: str | None = None
    size: int = 512
    seed: int = 0
    missing: dict[str, float] = field(default_factory=dict)
    label_key: str = "label"
    root: str | None = None


@dataclass
class SourceConfig(RowsConfig):
    """One source of a mixture (``data.train.sources``: :mod:`anymodal.data.mixture`).

    Args:
        kind: ``manifest`` or ``synthetic`` (a source is sampled by row index).
        modalities: the recipe's modality keys this source provides (``null``: all of
            them); the others are missing from its rows and never loaded.
        weight: the source's share of the draws, relative to the other sources' weights.
    """

    # Redeclared: the field keeps its place (first), with a manifest as the default.
    kind: str = "manifest"
    modalities: list[str] | None = None
    weight: float = 1.0


@dataclass
class DatasetConfig(RowsConfig):
    """One split's data.

    Args:
        kind: ``synthetic`` (each plugin's ``synthesize``), ``manifest`` (JSONL/CSV rows of
            paths), ``webdataset`` (tar shards, streamed) or ``mixture`` (the ``sources``,
            sampled by weight).
        path: the manifest file, or the shard pattern (``data/shard-{000..009}.tar``).
        sources: ``mixture`` only: the paired data sets, each with its own modalities and
            sampling weight.
        mixing: ``mixture`` only: ``ratio`` (every batch mixes the sources by weight) or
            ``batch`` (each global batch comes from one source, picked by weight).
    """

    sources: list[SourceConfig] = field(default_factory=list)
    mixing: str = "ratio"


@dataclass
class SampleCacheConfig:
    """The sample cache (:mod:`anymodal.data.sample_cache`).

    Args:
        dir: the folder that holds it (shared by runs and ``anymodal cache build``).
        modalities: the recipe keys whose decoded items are cached (``null``: all).
    """

    dir: str = "cache/samples"
    modalities: list[str] | None = None


@dataclass
class FeatureCacheConfig:
    """The frozen-feature cache (:mod:`anymodal.data.feature_cache`).

    Args:
        dir: the folder that holds it (shared by runs and ``anymodal cache build``).
        modalities: the recipe keys whose frozen encoders' outputs are cached (``null``:
            every frozen modality). Each must have ``freeze: true`` with no ``lora`` and no
            ``trainable`` layers, and a deterministic training transform. Rows read from
            manifests are cached (synthetic rows are encoded every time; webdataset
            splits are refused).
    """

    dir: str = "cache/features"
    modalities: list[str] | None = None


@dataclass
class DataConfig:
    """The data: splits, batching, loader workers and the bad-row policy.

    Args:
        train: the training split.
        val: the validation split (``null``: none).
        batch_size: rows per process per step.
        num_workers: DataLoader worker processes (``null``: none for synthetic data, else
            the cores available to each process, at most 8).
        pin_memory: pin host memory (useful with a GPU).
        on_error: ``skip`` (log the row to ``bad_samples.jsonl``) or ``raise``.
        max_bad_fraction: stop when more than this fraction of rows seen failed to load.
        load_timeout: seconds one item may take to load and transform before its row is
            bad (a FIFO, a stalled network file system); ``0``: no limit.
        cache: the sample cache: each item's decoded part stored once (``null``: none).
        feature_cache: the frozen-feature cache: each item's frozen encoder output stored
            once, so that a frozen tower runs only on the first pass (``null``: none).
    """

    train: DatasetConfig = field(default_factory=DatasetConfig)
    val: DatasetConfig | None = None
    batch_size: int = 32
    num_workers: int | None = None
    pin_memory: bool = False
    on_error: str = "skip"
    max_bad_fraction: float = 0.1
    load_timeout: float = 60.0
    cache: SampleCacheConfig | None = None
    feature_cache: FeatureCacheConfig | None = None


@dataclass
class OptimConfig:
    """AdamW with warmup and a schedule.

    ``weight_decay`` skips biases, norms, embeddings and the logit scale.

    Args:
        lr: the peak learning rate, reached at the end of the warmup.
        weight_decay: AdamW's decoupled weight decay.
        betas: AdamW's moment coefficients ``[beta1, beta2]``.
        eps: AdamW's epsilon.
        warmup_steps: steps of linear warmup from 0 to ``lr``.
        schedule: the learning rate after the warmup: ``cosine``, ``linear`` or
            ``constant``.
        min_lr_ratio: the schedule's final learning rate, as a fraction of ``lr``.
        grad_clip: the gradient norm is clipped at this value (0: no clipping).
    """

    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0


@dataclass
class ModalityDropoutConfig:
    """Subset-consistent training (see :mod:`anymodal.data.subsets`).

    Args:
        p: the fraction of training rows that hide a random subset of their modalities
            (``null``: 0.3 for objectives whose subset queries are otherwise untrained,
            such as Symile and GRAM, else 0; ``0`` turns it off).
        min_present: modalities each row keeps at least.
    """

    p: float | None = None
    min_present: int = 2


@dataclass
class EvalConfig:
    """Validation during training (the same rule as ``anymodal eval``).

    Args:
        tasks: retrieval tasks such as ``a->b`` or ``a+b->c`` (``null``: every
            single-modality pair plus all-others -> each).
        positives: ``source`` (targets paired with the query on some row) or ``label``
            (``null``: ``label`` for synthetic data, ``source`` otherwise).
    """

    tasks: list[str] | None = None
    positives: str | None = None


@dataclass
class TrainConfig:
    """The training run: length, checkpoints, resume, precision and cadence.

    Args:
        max_steps: optimiser steps to run.
        output_dir: where checkpoints, logs and the final ``model/`` go.
        checkpoint_every: steps between checkpoints (0: only at the end and on signals).
        keep: how many checkpoints to keep.
        eval_every: steps between evaluations (0: only at the end, if there is a val set).
        resume: ``no``, ``auto`` (newest complete checkpoint) or a checkpoint path.
        seed: seed of everything.
        mixed_precision: ``no``, ``fp16`` or ``bf16``.
        grad_accum: micro-batches per optimiser step.
        micro_batch: GradCache (:mod:`anymodal.training.gradcache`): embed each batch this
            many rows at a time and still step on the exact gradient of the whole batch
            (``null``: one forward pass over the batch).
        log_every: steps between logged metrics.
        max_nonfinite: consecutive non-finite losses before the run stops.
        deterministic: ask torch for deterministic kernels.
        cpu: force the CPU even where a GPU exists (``null``: CPU only when no GPU).
        threads: torch intra-op threads per process on the CPU (``null``: the cores left
            to each process after its DataLoader workers, at least 1).
        modality_dropout: subset-consistent training (rows hide random modalities).
        overwrite: allow a run in an ``output_dir`` that holds another run's files.
        init_from: a saved model folder (a run's ``model/``) to start from: its modalities
            are built as saved, loaded and frozen (encoders, heads, missing embeddings), and
            the recipe's new modality keys are the ones trained
            (:mod:`anymodal.training.init_from`). ``null``: a fresh model.
        init_from_logit_scale: with ``init_from``, the logit scale: ``frozen`` (the saved
            value), ``train`` (the saved value, then learned) or ``recipe``
            (``model.logit_scale_init``).
    """

    max_steps: int = 100
    output_dir: str = "runs/experiment"
    checkpoint_every: int = 0
    keep: int = 2
    eval_every: int = 0
    resume: str = "no"
    seed: int = 0
    mixed_precision: str = "no"
    grad_accum: int = 1
    micro_batch: int | None = None
    log_every: int = 10
    max_nonfinite: int = 5
    deterministic: bool = False
    cpu: bool | None = None
    threads: int | None = None
    modality_dropout: ModalityDropoutConfig = field(default_factory=ModalityDropoutConfig)
    overwrite: bool = False
    init_from: str | None = None
    init_from_logit_scale: str = "frozen"


@dataclass
class LoggingConfig:
    """Logging: trackers, project name and the progress bar.

    Args:
        trackers: Accelerate trackers (``csv`` is built in; ``tensorboard``, ``wandb``,
            ``mlflow`` when installed). ``metrics.jsonl`` is always written.
        project: the tracker project name.
        progress: show a progress bar on the main process.
    """

    trackers: list[str] = field(default_factory=lambda: ["csv"])
    project: str = "anymodal"
    progress: bool = True


@dataclass
class ExperimentConfig:
    """A whole experiment: modalities, model, objective, data, optimiser, run, logging, eval."""

    name: str = "experiment"
    modalities: dict[str, ModalityConfig] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_CHOICES: dict[str, tuple[str, ...]] = {
    "model.head": ("linear", "mlp"),
    "data.train.kind": ("synthetic", "manifest", "webdataset", "mixture"),
    "data.val.kind": ("synthetic", "manifest", "webdataset", "mixture"),
    "data.train.mixing": ("ratio", "batch"),
    "data.val.mixing": ("ratio", "batch"),
    "data.on_error": ("skip", "raise"),
    "eval.positives": ("source", "label"),
    "optim.schedule": ("cosine", "linear", "constant"),
    "train.mixed_precision": ("no", "fp16", "bf16"),
    "train.init_from_logit_scale": ("frozen", "train", "recipe"),
}


# Numeric options and their ranges, as intervals (``[`` includes the bound, ``(`` excludes
# it). ``*`` stands for every modality key, split or list item. A value outside, NaN or
# infinite is a ConfigError naming the key.
_RANGES: tuple[tuple[str, str], ...] = (
    ("model.embed_dim", "[1, inf)"),
    ("model.logit_scale_init", "(0, inf)"),
    ("model.logit_scale_max", "(0, inf)"),
    ("modalities.*.lr_mult", "[0, inf)"),
    ("data.*.size", "[1, inf)"),
    ("data.*.seed", "[0, inf)"),
    ("data.*.missing.*", "[0, 1]"),
    ("data.*.sources.*.weight", "(0, inf)"),
    ("data.*.sources.*.size", "[1, inf)"),
    ("data.*.sources.*.seed", "[0, inf)"),
    ("data.*.sources.*.missing.*", "[0, 1]"),
    ("data.batch_size", "[1, inf)"),
    ("data.num_workers", "[0, inf)"),
    ("data.max_bad_fraction", "[0, 1]"),
    ("data.load_timeout", "[0, inf)"),
    ("optim.lr", "(0, inf)"),
    ("optim.weight_decay", "[0, inf)"),
    ("optim.betas.*", "[0, 1)"),
    ("optim.eps", "(0, inf)"),
    ("optim.warmup_steps", "[0, inf)"),
    ("optim.min_lr_ratio", "[0, 1]"),
    ("optim.grad_clip", "[0, inf)"),
    ("train.max_steps", "[1, inf)"),
    ("train.checkpoint_every", "[0, inf)"),
    ("train.keep", "[1, inf)"),
    ("train.eval_every", "[0, inf)"),
    ("train.seed", "[0, inf)"),
    ("train.grad_accum", "[1, inf)"),
    ("train.micro_batch", "[1, inf)"),
    ("train.log_every", "[1, inf)"),
    ("train.max_nonfinite", "[1, inf)"),
    ("train.threads", "[1, inf)"),
    ("train.modality_dropout.p", "[0, 1]"),
    ("train.modality_dropout.min_present", "[1, inf)"),
)


def _numbers(node: Any, parts: list[str], prefix: str) -> Iterable[tuple[str, Any]]:
    """``(dotted key, value)`` of every value under ``node`` matching ``parts`` (``*`` any)."""
    if not parts:
        yield prefix, node
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, Mapping):
        keys = list(node) if head == "*" else [head] if head in node else []
        for key in keys:
            yield from _numbers(node[key], rest, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list) and head == "*":
        for i, item in enumerate(node):
            yield from _numbers(item, rest, f"{prefix}[{i}]")


def _inside(value: Any, interval: str) -> bool:
    """Whether ``value`` is a finite number in ``interval`` (e.g. ``[0, 1)``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    low, high = (float(x) for x in interval[1:-1].split(","))
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def check_ranges(config: DictConfig) -> None:
    """Check every numeric option against its range (:data:`_RANGES`).

    Args:
        config: the merged config.

    Raises:
        ConfigError: naming the key, its value and the range expected.
    """
    plain = OmegaConf.to_container(config, resolve=True)
    for pattern, interval in _RANGES:
        for key, value in _numbers(plain, pattern.split("."), ""):
            if value is not None and not _inside(value, interval):
                raise ConfigError(f"config key {key!r} is {value!r}; expected a finite "
                                  f"number in {interval}")
    model = plain["model"] if isinstance(plain, dict) else {}
    if (model["logit_scale_init"] or 0.0) > model["logit_scale_max"]:
        raise ConfigError(f"config key 'model.logit_scale_init' is {model['logit_scale_init']}"
                          f", above model.logit_scale_max ({model['logit_scale_max']})")


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    validate: bool = True,
) -> DictConfig:
    """Load a recipe: schema <- YAML file <- overrides, validated.

    Args:
        path: a YAML recipe (``None``: the defaults alone).
        overrides: ``["train.max_steps=10", ...]`` (``key=value`` replaces the value,
            ``key+=value`` merges into it: :mod:`anymodal.utils.overrides`), or a nested
            mapping merged like a recipe.
        validate: check modalities, encoders, objective and their params.

    Returns:
        The merged config, typed by :class:`ExperimentConfig` (unknown keys are refused).
    """
    schema = OmegaConf.structured(ExperimentConfig)
    layers: list[tuple[str, Any]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe {path} not found")
        try:
            layers.append((f"recipe {path}", OmegaConf.load(path)))
        except Exception as exc:  # yaml.YAMLError and OmegaConf errors
            raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from None
    items: list[str] = []
    if isinstance(overrides, Mapping):
        layers.append(("the overrides", OmegaConf.create(dict(overrides))))
    elif overrides:
        items = list(overrides)
    # Every unknown key of every layer in one message, not the first one merge trips on.
    check_keys([(where, OmegaConf.to_container(layer)) for where, layer in layers
                if isinstance(layer, DictConfig)], ExperimentConfig)
    config = schema
    for where, layer in layers:
        config = _merge(config, layer, source=where)
    apply_overrides(config, items, ExperimentConfig)
    if validate:
        validate_config(config)
    return config


def _merge(base: DictConfig, layer: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, layer)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        raise ConfigError(_explain(exc, key)) from None


def _explain(exc: OmegaConfBaseException, key: str) -> str:
    message = str(getattr(exc, "msg", exc)).splitlines()[0]
    parent, _, leaf = key.rpartition(".")
    valid = _valid_keys(parent)
    if isinstance(exc, ConfigKeyError) and valid is not None:
        return f"unknown config key {key!r}; {suggest(leaf, valid)}"
    return f"config key {key!r}: {message}"


def _valid_keys(parent: str) -> list[str] | None:
    """The keys allowed under ``parent`` (dotted), for "did you mean" hints."""
    parts = [p for p in parent.split(".") if p]
    if len(parts) == 2 and parts[0] == "modalities":
        return [f.name for f in dataclasses.fields(ModalityConfig)]
    if parts == ["data", "val"]:
        return [f.name for f in dataclasses.fields(DatasetConfig)]
    schema = OmegaConf.structured(ExperimentConfig)
    node = OmegaConf.select(schema, parent) if parts else schema
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else None


def validate_config(config: DictConfig) -> None:
    """Check what the schema cannot: ranges, names exist and params fit (raises ConfigError)."""
    check_ranges(config)
    for key, expected in _CHOICES.items():
        value = OmegaConf.select(config, key)
        if value is not None and value not in expected:
            raise ConfigError(
                f"config key {key!r} is {value!r}; {suggest(str(value), list(expected))}"
            )
    if not config.modalities:
        raise ConfigError("config key 'modalities' is empty: name at least one modality")
    for split in ("train", "val"):
        _check_sources(config, split)
    manager = get_plugin_manager()
    for key, mod in config.modalities.items():
        _check_modality(str(key), mod, manager)
    _check_cached_splits(config, "cache")
    _check_cached_splits(config, "feature_cache")
    _check_feature_cache(config)
    name = config.objective.name
    if name not in manager.objectives:
        raise ConfigError(
            f"objective.name: unknown objective {name!r}; "
            f"{suggest(name, manager.objectives.names())}"
        )
    try:
        build_params(manager.objectives.get(name).config_cls, plain(config.objective.params),
                     f"objective {name!r}")
    except ConfigError as exc:
        raise ConfigError(f"objective.params: {exc}") from None
    except PluginError as exc:
        raise ConfigError(str(exc)) from None


def _check_modality(key: str, mod: Any, manager: Any) -> None:
    """Check that one modality's type and encoder exist and that its options and params fit."""
    where = f"modalities.{key}"
    kind = mod.modality or key
    if kind not in manager.modalities:
        raise ConfigError(
            f"{where}: unknown modality {kind!r}; {suggest(kind, manager.modalities.names())}"
            + _install_hint(kind)
        )
    try:
        spec = get_modality(kind, **plain(mod.options))
    except ConfigError as exc:
        raise ConfigError(f"{where}.options: {exc}") from None
    encoder = mod.encoder or spec.default_encoder
    if encoder not in manager.encoders:
        choices = [n for n in manager.encoders.names()
                   if manager.encoders.get(n).modality == kind]
        raise ConfigError(
            f"{where}.encoder: unknown encoder {encoder!r}; {suggest(encoder, choices)}"
        )
    enc = get_encoder_spec(encoder)
    if enc.modality != kind:
        raise ConfigError(
            f"{where}.encoder: {encoder!r} encodes {enc.modality!r}, not {kind!r}"
        )
    try:
        params = OmegaConf.to_container(mod.params, resolve=True)
        build_params(enc.config_cls, bind_encoder_params(enc, spec, params),
                     f"encoder {encoder!r}")
    except ConfigError as exc:
        raise ConfigError(f"{where}.params: {exc}") from None


def _check_sources(config: DictConfig, split: str) -> None:
    """A ``mixture`` split lists sources of known modalities; other kinds list none."""
    node = config.data.get(split)
    if node is None:
        return
    sources = node.get("sources") or []
    if node.kind != "mixture":
        if sources:
            raise ConfigError(f"data.{split}.sources is set but data.{split}.kind is "
                              f"{node.kind!r}; sources need kind: mixture")
        return
    if not sources:
        raise ConfigError(f"data.{split}.kind is 'mixture' but data.{split}.sources is "
                          "empty: list at least one source")
    keys = [str(k) for k in config.modalities]
    for i, source in enumerate(sources):
        where = f"data.{split}.sources[{i}]"
        if source.kind not in ("manifest", "synthetic"):
            raise ConfigError(f"{where}.kind is {source.kind!r}; expected manifest or "
                              "synthetic (streamed shards cannot be sampled by index)")
        if source.kind == "manifest" and not source.path:
            raise ConfigError(f"{where} is a manifest source without a 'path'")
        for key in source.modalities if source.modalities is not None else keys:
            if key not in keys:
                raise ConfigError(f"{where}.modalities: {key!r} is not a modality of the "
                                  f"recipe; {suggest(str(key), keys)}")
        if source.modalities is not None and not source.modalities:
            raise ConfigError(f"{where}.modalities is empty: name at least one modality")


def _check_cached_splits(config: DictConfig, name: str) -> None:
    """A cache (``data.cache``, ``data.feature_cache``) is refused for streamed splits.

    A shard hands each binary item over as a fresh temporary file, so an item has no stable
    key: every epoch would store new entries that are never read again.
    """
    if config.data.get(name) is None:
        return
    for split in ("train", "val"):
        node = config.data.get(split)
        if node is not None and node.kind == "webdataset":
            raise ConfigError(f"data.{name} cannot serve data.{split}.kind 'webdataset' "
                              "(streamed items have no stable file to key their entries by); "
                              f"use a manifest, or set data.{name}: null")


def _check_feature_cache(config: DictConfig) -> None:
    """``data.feature_cache`` names modalities that exist and are frozen whole."""
    cache = config.data.get("feature_cache")
    if cache is None:
        return
    for key in cache.modalities or []:
        mod = config.modalities.get(key)
        if mod is None:
            raise ConfigError(f"data.feature_cache.modalities names {key!r}, which the recipe "
                              f"does not have; valid: {sorted(config.modalities)}")
        if not mod.freeze or mod.lora or mod.trainable:
            raise ConfigError(
                f"data.feature_cache.modalities names {key!r}, whose encoder trains "
                f"(modalities.{key}.freeze must be true, with no lora and no trainable): "
                "its features change at every step and cannot be cached")


def _install_hint(kind: str) -> str:
    failure = get_plugin_manager().failure_for(kind)
    if failure is not None:
        return f" (plugin {failure.name!r} failed to load: {failure.reason})"
    return f" (is its plugin installed? e.g. pip install anymodal-{kind})"


def plain(node: Any) -> dict[str, Any]:
    """A config mapping (options, params) as a plain ``dict``, interpolations resolved.

    Args:
        node: a ``DictConfig`` mapping, or ``None`` (an empty mapping).
    """
    if node is None:
        return {}
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))


def to_yaml(config: DictConfig) -> str:
    """The resolved config as YAML (what ``config.yaml`` of a saved model holds)."""
    return OmegaConf.to_yaml(config, resolve=True)
