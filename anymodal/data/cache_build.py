"""Filling and surveying a recipe's sample cache (``anymodal cache build|info``)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from anymodal.config import plain
from anymodal.errors import ConfigError, DataError
from anymodal.types import ModalitySpec

from .collate import BadRow
from .manifest import ManifestDataset
from .sample_cache import CachedLoad, with_sample_cache
from .sources import path_rule, resolve_source

__all__ = ["CacheSurvey", "build_cache", "cached_specs", "entry_sizes", "survey_cache"]


def cached_specs(config: DictConfig) -> dict[str, ModalitySpec]:
    """The recipe's cached modalities, bound and wrapped (only those ``data.cache`` names).

    Raises:
        ConfigError: the recipe has no ``data.cache``.
    """
    from anymodal.plugin_host.manager import get_modality

    cache = config.data.get("cache")
    if cache is None:
        raise ConfigError("the recipe has no data.cache; add one (e.g. the override "
                          "data.cache.dir=cache/samples)")
    specs = {key: get_modality(mod.modality or key, **plain(mod.options))
             for key, mod in config.modalities.items()}
    wrapped = with_sample_cache(specs, cache)
    return {k: s for k, s in wrapped.items() if isinstance(s.load, CachedLoad)}


def _manifests(config: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    """``(split name, split)`` of the recipe's manifest splits (others have no files)."""
    for name in ("train", "val"):
        split = config.data.get(name)
        if split is not None and split.kind == "manifest" and split.path:
            yield name, split


_DATASET: ManifestDataset | None = None


def _load_one(index: int) -> bool:
    """Load row ``index`` of the worker's dataset (filling the cache); whether it was good."""
    assert _DATASET is not None
    return not isinstance(_DATASET[index], BadRow)


def build_cache(config: DictConfig, workers: int = 1, progress: bool = True
                ) -> dict[str, int]:
    """Fill the sample cache of every manifest split; entries already there are kept.

    Resumable (an interrupted build keeps every entry written) and parallel (``workers``
    forked processes; their atomic writes never tear an entry).

    Args:
        config: the recipe.
        workers: processes loading rows.
        progress: show a progress bar.

    Returns:
        ``{"rows": n, "bad_rows": n}``.
    """
    from anymodal.utils.progress import progress_bar

    global _DATASET
    specs = cached_specs(config)
    counts = {"rows": 0, "bad_rows": 0}
    for name, split in _manifests(config):
        _DATASET = ManifestDataset(split.path, specs, train=False, on_error="skip",
                                   label_key=split.label_key, root=split.get("root"),
                                   load_timeout=config.data.load_timeout)
        bar = progress_bar(len(_DATASET), desc=f"cache {name}", unit="row", disable=not progress)
        indices = range(len(_DATASET))
        if workers > 1:  # fork: the children inherit the dataset
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = list(_tick(pool.imap_unordered(_load_one, indices, chunksize=8), bar))
        else:
            results = list(_tick(map(_load_one, indices), bar))
        bar.close()
        counts["rows"] += len(results)
        counts["bad_rows"] += results.count(False)
    _DATASET = None
    return counts


def _tick(results: Iterator[bool], bar: Any) -> Iterator[bool]:
    for ok in results:
        bar.update(1)
        yield ok


@dataclass
class CacheSurvey:
    """What a recipe's sample (or feature) cache holds, per cached modality.

    Args:
        items: the recipe's items of that modality (rows with a source).
        hits: of those, the items whose entry is in the cache for the file as it is now.
        entries / bytes: entries and bytes under the modality's current options (for the
            feature cache: also the current encoder and weights).
        stale_entries / stale_bytes: entries kept for other options, encoders or weights
            (never read).
    """

    items: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    stale_entries: dict[str, int] = field(default_factory=dict)
    stale_bytes: dict[str, int] = field(default_factory=dict)


def entry_sizes(folder: Path) -> tuple[int, int]:
    """``(entries, bytes)`` of the entry files under ``folder``."""
    files = [p for p in folder.rglob("*.safetensors") if not p.name.startswith(".")]
    return len(files), sum(p.stat().st_size for p in files)


def survey_cache(config: DictConfig) -> CacheSurvey:
    """Size and hit rate of the recipe's sample cache (reads no entry, decodes nothing)."""
    specs = cached_specs(config)
    survey = CacheSurvey()
    for key, spec in specs.items():
        load = spec.load
        assert isinstance(load, CachedLoad)
        folder = Path(load.root) / key
        survey.entries[key], survey.bytes[key] = entry_sizes(folder / load.space)
        stale = [entry_sizes(p) for p in folder.glob("*") if p.is_dir() and p.name != load.space]
        survey.stale_entries[key] = sum(n for n, _ in stale)
        survey.stale_bytes[key] = sum(b for _, b in stale)
        survey.items[key] = survey.hits[key] = 0
    for _, split in _manifests(config):
        _count_hits(split, specs, survey)
    return survey


def _count_hits(split: DictConfig, specs: Mapping[str, ModalitySpec], survey: CacheSurvey
                ) -> None:
    dataset = ManifestDataset(split.path, specs, train=False, on_error="skip",
                              root=split.get("root"))
    for row in dataset.rows:
        for key, spec in specs.items():
            if row.get(key) is None:
                continue
            survey.items[key] += 1
            try:
                source = resolve_source(row[key], dataset.base_dir, dataset.root,
                                        path_rule(spec.load))
            except DataError:
                continue
            assert isinstance(spec.load, CachedLoad)
            path = spec.load.path_for(source)
            survey.hits[key] += int(path is not None and os.path.exists(path))
