"""Datasets and data loaders from the ``data`` section of a recipe."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, IterableDataset

from anymodal.errors import ConfigError
from anymodal.types import ModalitySpec

from .collate import collate_rows
from .guard import DEFAULT_LOAD_TIMEOUT
from .manifest import ManifestDataset
from .mixture import MixtureDataset, MixtureSampler
from .shards import ShardDataset
from .subsets import EpochRows, EpochSampler, ModalityDropout
from .synthetic import SyntheticDataset

__all__ = ["build_dataloader", "build_dataset", "build_mixture", "default_num_workers"]


def build_dataset(split: DictConfig, modalities: Mapping[str, ModalitySpec], train: bool,
                  on_error: str, seed: int = 0, load_timeout: float = DEFAULT_LOAD_TIMEOUT
                  ) -> Dataset:  # type: ignore[type-arg]
    """The dataset of one split (``data.train`` or ``data.val``)."""
    if split.kind == "mixture":
        return build_mixture(split, modalities, train, on_error, seed, load_timeout)
    if split.kind == "synthetic":
        return SyntheticDataset(modalities, split.size, split.seed, dict(split.missing))
    if not split.path:
        raise ConfigError(f"data split of kind {split.kind!r} needs a 'path'")
    if split.kind == "manifest":
        return ManifestDataset(split.path, modalities, train=train, on_error=on_error,
                               label_key=split.label_key, root=split.get("root"),
                               load_timeout=load_timeout)
    if split.kind == "webdataset":
        return ShardDataset(split.path, modalities, train=train, on_error=on_error, seed=seed,
                            load_timeout=load_timeout)
    raise ConfigError(f"unknown data kind {split.kind!r}; valid choices: manifest, "
                      "mixture, synthetic, webdataset")


def build_mixture(split: DictConfig, modalities: Mapping[str, ModalitySpec], train: bool,
                  on_error: str, seed: int = 0, load_timeout: float = DEFAULT_LOAD_TIMEOUT
                  ) -> MixtureDataset:
    """The :class:`MixtureDataset` of a split of kind ``mixture`` (its ``sources``).

    Each source is built like a split of its own kind with only the modalities it lists
    (``null``: every modality of the recipe), so it never loads the others.

    Args:
        split: ``data.train`` with ``kind: mixture``, ``sources`` and ``mixing``.
        modalities: every modality of the recipe.
        train: apply training augmentation.
        on_error: the bad-row policy.
        seed: the run's seed.
        load_timeout: seconds one item may take to load.
    """
    sources, names = [], []
    for i, source in enumerate(split.get("sources") or []):
        name = f"data.{'train' if train else 'val'}.sources[{i}]"
        if source.kind not in ("manifest", "synthetic"):
            raise ConfigError(f"{name}.kind is {source.kind!r}; a mixture reads manifest or "
                              "synthetic sources (streamed webdataset shards cannot be "
                              "sampled by index)")
        keys = list(modalities) if source.get("modalities") is None else list(source.modalities)
        unknown = [k for k in keys if k not in modalities]
        if unknown or not keys:
            raise ConfigError(f"{name}.modalities is {keys}; expected recipe modality keys "
                              f"({', '.join(modalities)})")
        subset = {k: modalities[k] for k in keys}
        sources.append(build_dataset(source, subset, train, on_error, seed, load_timeout))
        names.append(name)
    return MixtureDataset(sources, names, [float(s.weight) for s in split.sources],
                          str(split.get("mixing", "ratio")))


def default_num_workers(dataset: Dataset, processes: int = 1) -> int:  # type: ignore[type-arg]
    """Loader workers when the recipe leaves ``data.num_workers`` unset.

    Synthetic rows are generated in microseconds in the main process, so workers would only
    add start-up time; rows read from files are decoded in the cores each process has (at
    most 8). Measured on 2 cores (issue 20): 64 steps took 98 s with no worker, 31 s with 2.

    Args:
        dataset: the training set.
        processes: training processes on this machine (each gets its share of the cores).
    """
    if isinstance(dataset, SyntheticDataset) or (isinstance(dataset, MixtureDataset) and all(
            isinstance(s, SyntheticDataset) for s in dataset.sources)):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) // max(1, processes)))


def build_dataloader(dataset: Dataset, modalities: Mapping[str, ModalitySpec],  # type: ignore[type-arg]
                     batch_size: int, shuffle: bool, num_workers: int = 0,
                     pin_memory: bool = False, seed: int = 0, drop_last: bool = True,
                     dropout: ModalityDropout | None = None, epochs: int = 1,
                     processes: int | None = None) -> DataLoader:  # type: ignore[type-arg]
    """A loader whose batches are collated with presence masks.

    A shuffled map-style set is read in the seeded order of :class:`EpochSampler`, whose
    indices carry the epoch so that ``dropout`` (subset-consistent training) draws the
    same hidden modalities per row and epoch in every process and loader worker; one pass
    of the loader chains ``epochs`` epochs (no stall at each epoch boundary). A
    :class:`MixtureDataset` is read in the order of :class:`MixtureSampler` instead, whose
    ``batch`` mixing needs the number of ``processes`` (``None``: the world size of
    ``torch.distributed`` when it is initialised, else 1).
    """
    iterable = isinstance(dataset, IterableDataset)
    sampler: EpochSampler | MixtureSampler | None = None
    if shuffle and isinstance(dataset, MixtureDataset):
        sampler = MixtureSampler(dataset.sizes, dataset.weights, seed, epochs, dataset.mixing,
                                 batch_size * (processes or _world_size()))
        dataset = EpochRows(dataset, dropout or ModalityDropout(seed=seed))
    elif shuffle and not iterable:
        dataset = EpochRows(dataset, dropout or ModalityDropout(seed=seed))
        sampler = EpochSampler(len(dataset), seed, epochs)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=partial(collate_rows, modalities=dict(modalities)),
        persistent_workers=num_workers > 0,
    )


def _world_size() -> int:
    """Processes of the initialised process group (1 without one)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
