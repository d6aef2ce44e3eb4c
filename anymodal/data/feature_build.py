"""Filling and surveying a recipe's frozen-feature cache (``anymodal cache build|info``).

The build reads every row of the recipe's manifest splits (``data.train``, ``data.val``)
in evaluation mode, runs each cached modality's frozen encoder on the items whose feature
is not stored yet, on the device and at the precision training would use, and writes
them (:mod:`anymodal.data.feature_cache`). It is resumable (stored features are kept) and
several builds may fill one cache at once (atomic entries).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from anymodal.errors import ConfigError, DataError

from .cache_build import CacheSurvey, entry_sizes
from .collate import BAD_KEY, collate_rows
from .feature_cache import FeatureBatch, FeatureStore, feature_stores, wrap_specs
from .manifest import ManifestDataset
from .sources import path_rule, resolve_source

if TYPE_CHECKING:
    from anymodal.model.core import MultiModalModel

__all__ = ["FeatureSurvey", "build_device", "build_feature_cache", "survey_feature_cache"]


def build_device(config: DictConfig) -> torch.device:
    """The device training would run on: a GPU unless ``train.cpu`` (or none exists)."""
    cpu = (not torch.cuda.is_available()) if config.train.cpu is None else bool(config.train.cpu)
    return torch.device("cpu" if cpu else "cuda")


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The mixed-precision context of ``train.mixed_precision`` (features match training's)."""
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtypes[precision])


def _stores(model: MultiModalModel, config: DictConfig, device: torch.device
            ) -> dict[str, FeatureStore]:
    cache = config.data.get("feature_cache")
    if cache is None:
        raise ConfigError("the recipe has no data.feature_cache; add one (e.g. the override "
                          "data.feature_cache.dir=cache/features)")
    return feature_stores(model, cache, device.type, str(config.train.mixed_precision))


def _manifests(config: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    """``(split name, split)`` of the recipe's manifest splits (others have no files)."""
    for name in ("train", "val"):
        split = config.data.get(name)
        if split is not None and split.kind == "manifest" and split.path:
            yield name, split


def build_feature_cache(model: MultiModalModel, config: DictConfig, workers: int = 0,
                        progress: bool = True) -> dict[str, int]:
    """Compute and store the features of every item of the recipe's manifests.

    Args:
        model: the model built from ``config`` (its frozen encoders).
        config: the recipe (``data.feature_cache`` set).
        workers: DataLoader processes loading rows.
        progress: show a progress bar.

    Returns:
        ``{"rows": n, "bad_rows": n, "hits": n, "computed": n}`` (hits: items already
        stored; computed: items encoded and stored now).
    """
    from anymodal.utils.progress import progress_bar

    device = build_device(config)
    model.to(device).eval()
    stores = _stores(model, config, device)
    specs = wrap_specs({k: model.modalities[k] for k in stores}, model, stores)
    counts = {"rows": 0, "bad_rows": 0, "hits": 0, "computed": 0}
    for name, split in _manifests(config):
        dataset = ManifestDataset(split.path, specs, train=False, on_error="skip",
                                  label_key=split.label_key, root=split.get("root"),
                                  load_timeout=config.data.load_timeout)
        loader = DataLoader(dataset, batch_size=int(config.data.batch_size),
                            num_workers=workers, collate_fn=partial(collate_rows,
                                                                    modalities=specs))
        bar = progress_bar(len(dataset), desc=f"features {name}", unit="row",
                           disable=not progress)
        with bar, torch.no_grad(), _autocast(device, str(config.train.mixed_precision)):
            for batch in loader:
                _encode_batch(model, batch, stores, device, counts)
                bar.update(len(batch["ids"]) + len(batch[BAD_KEY]))
    return counts


def _encode_batch(model: MultiModalModel, batch: dict[str, Any],
                  stores: Mapping[str, FeatureStore], device: torch.device,
                  counts: dict[str, int]) -> None:
    counts["rows"] += len(batch["ids"]) + len(batch[BAD_KEY])
    counts["bad_rows"] += len(batch[BAD_KEY])
    for key in stores:
        value = batch.get(key)
        if not isinstance(value, FeatureBatch):
            continue
        hits = int(value.hit.sum())
        counts["hits"] += hits
        counts["computed"] += len(value) - hits
        value.to(device).anymodal_features(model.encoders[key])  # writes the misses


#: What a recipe's feature cache holds: the sample cache's survey, read the same way.
FeatureSurvey = CacheSurvey


def survey_feature_cache(model: MultiModalModel, config: DictConfig) -> FeatureSurvey:
    """Size and hit rate of the recipe's feature cache (reads no entry, encodes nothing).

    Args:
        model: the model built from ``config`` (its encoders' weights are hashed).
        config: the recipe.
    """
    stores = _stores(model, config, build_device(config))
    survey = FeatureSurvey()
    for key, store in stores.items():
        survey.entries[key], survey.bytes[key] = entry_sizes(store.folder)
        stale = [entry_sizes(p) for p in store.folder.parent.glob("*")
                 if p.is_dir() and p.name != store.space]
        survey.stale_entries[key] = sum(n for n, _ in stale)
        survey.stale_bytes[key] = sum(b for _, b in stale)
        survey.items[key] = survey.hits[key] = 0
    for _, split in _manifests(config):
        dataset = ManifestDataset(split.path, {k: model.modalities[k] for k in stores},
                                  train=False, on_error="skip", root=split.get("root"))
        for row in dataset.rows:
            for key, store in stores.items():
                if row.get(key) is not None:
                    survey.items[key] += 1
                    survey.hits[key] += int(_stored(row[key], dataset, store,
                                                    model.modalities[key].load))
    return survey


def _stored(value: Any, dataset: ManifestDataset, store: FeatureStore, load: Any) -> bool:
    try:
        source = resolve_source(value, dataset.base_dir, dataset.root, path_rule(load))
    except DataError:
        return False
    path = store.path_for(source)
    return path is not None and Path(path).is_file()
