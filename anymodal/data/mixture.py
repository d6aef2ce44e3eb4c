"""Mixtures of paired data sets: several sources, each with its own modalities, by weight.

Bound modalities are usually learned from several paired data sets that each hold a
different subset of the modalities (image–text, image–audio, ...), mixed by ratio (mmlearn's
``CombinedDatasetRatioSampler``; ImageBind). :class:`MixtureDataset` puts the sources one
after another (row ``i`` of the mixture is a row of one source); each source loads only its
own modalities, so the others are absent from its rows and collate marks them missing in
the ``present`` masks.

:class:`MixtureSampler` decides which rows an epoch visits. Each source gets a share of the
epoch proportional to its ``weight`` (the epoch holds as many draws as the sources hold rows;
a source drawn more often than it has rows is cycled through fresh permutations, one drawn
less often is subsampled without repetition). Two ways of mixing:

- ``ratio``: the draws of every source are shuffled together, so each batch holds rows of
  every source in about the weights' proportions (mmlearn's sampler).
- ``batch``: each *global* batch (``batch_size x processes`` rows, one optimiser micro-step
  across every process) comes from one source, picked in proportion to the weights; the
  order of the batches is shuffled.

The order is a pure function of ``(seed, epoch)``: every process computes the same one and
Accelerate hands each process its batches, and a resumed run that skips the batches it
already consumed sees exactly the remaining order. Indices carry the epoch
(``epoch * len(dataset) + row``) as :class:`~anymodal.data.subsets.EpochSampler`'s do, so
modality dropout (:class:`~anymodal.data.subsets.EpochRows`) works on a mixture unchanged.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from anymodal.errors import ConfigError

from .collate import BadRow, Row

__all__ = ["MIXING_CHOICES", "MixtureDataset", "MixtureSampler", "allocate"]

MIXING_CHOICES = ("ratio", "batch")


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` draws among sources in proportion to ``weights`` (largest remainder).

    Args:
        total: the draws to share.
        weights: one positive weight per source.

    Returns:
        Non-negative counts summing to ``total``; ties go to the earlier source.
    """
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class MixtureDataset(Dataset[Any]):
    """Several map-style sources as one dataset: row ``offsets[s] + j`` is row ``j`` of ``s``.

    Args:
        sources: the sources' datasets (each built with only its own modalities).
        names: a name per source, for messages (e.g. ``"sources[1]"``).
        weights: the sources' sampling weights (positive).
        mixing: how batches mix the sources (read by the loader's sampler):
            ``"ratio"`` or ``"batch"``.
    """

    def __init__(self, sources: Sequence[Dataset[Any]], names: Sequence[str],
                 weights: Sequence[float], mixing: str = "ratio") -> None:
        if not sources:
            raise ConfigError("a data mixture needs at least one source")
        if not len(sources) == len(names) == len(weights):
            raise ConfigError("a data mixture needs one name and one weight per source")
        if mixing not in MIXING_CHOICES:
            raise ConfigError(f"data mixing {mixing!r} is unknown; expected one of "
                              f"{', '.join(MIXING_CHOICES)}")
        for name, weight, source in zip(names, weights, sources, strict=True):
            if not (math.isfinite(weight) and weight > 0):
                raise ConfigError(f"{name}.weight is {weight!r}; expected a number > 0")
            if len(source) == 0:  # type: ignore[arg-type]
                raise ConfigError(f"{name} has no rows")
        self.sources = list(sources)
        self.names = list(names)
        self.weights = [float(w) for w in weights]
        self.mixing = mixing
        self.sizes = [len(s) for s in self.sources]  # type: ignore[arg-type]
        self.offsets = [0]
        for size in self.sizes:
            self.offsets.append(self.offsets[-1] + size)

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """``(source, row in that source)`` of mixture row ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        source = bisect.bisect_right(self.offsets, index) - 1
        return source, index - self.offsets[source]

    def __getitem__(self, index: int) -> Row | BadRow:
        source, row = self.locate(int(index))
        item = self.sources[source][row]
        if isinstance(item, BadRow):
            # Bad rows are reported once per index: make it unique across the sources.
            return dataclasses.replace(item, index=int(index))
        return item  # type: ignore[no-any-return]


class MixtureSampler(Sampler[int]):
    """The seeded visiting order of a :class:`MixtureDataset`; see the module docstring.

    Args:
        sizes: rows of each source.
        weights: each source's sampling weight.
        seed: the run's seed.
        epochs: epochs chained per pass (as :class:`~anymodal.data.subsets.EpochSampler`).
        mixing: ``"ratio"`` (sources mixed in every batch) or ``"batch"`` (one source per
            global batch).
        group: rows of one global batch (``batch_size x processes``); ``batch`` mode only.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int = 0,
                 epochs: int = 1, mixing: str = "ratio", group: int = 1) -> None:
        if mixing not in MIXING_CHOICES:
            raise ConfigError(f"data mixing {mixing!r} is unknown; expected one of "
                              f"{', '.join(MIXING_CHOICES)}")
        self.sizes = [int(s) for s in sizes]
        self.weights = [float(w) for w in weights]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.total = sum(self.sizes)
        self.seed = int(seed)
        self.epochs = max(1, int(epochs))
        self.mixing = mixing
        self.group = max(1, int(group))
        self.epoch = 0
        if mixing == "batch" and self.total < self.group:
            raise ConfigError(f"the mixture has {self.total} rows, fewer than one global "
                              f"batch ({self.group} rows)")

    def set_epoch(self, epoch: int) -> None:
        """Set the first epoch of the next pass (Accelerate calls this)."""
        self.epoch = int(epoch)

    @property
    def per_epoch(self) -> int:
        """Draws in one epoch (whole global batches in ``batch`` mode)."""
        if self.mixing == "batch":
            return self.total // self.group * self.group
        return self.total

    def __len__(self) -> int:
        return self.per_epoch * self.epochs

    def _draws(self, source: int, count: int, epoch: int) -> list[int]:
        """``count`` mixture rows of ``source``: fresh permutations of it, one after another."""
        g = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + epoch * 998_244_353 + source * 7_919 + 29) % (2**63))
        size, base = self.sizes[source], self.offsets[source]
        rows: list[int] = []
        while len(rows) < count:
            rows += torch.randperm(size, generator=g).tolist()
        return [base + r for r in rows[:count]]

    def epoch_order(self, epoch: int) -> list[int]:
        """The mixture rows epoch ``epoch`` visits, in order (without the epoch offset)."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch + 11) % (2**63))
        if self.mixing == "ratio":
            counts = allocate(self.total, self.weights)
            rows = [r for s, c in enumerate(counts) for r in self._draws(s, c, epoch)]
            return [rows[i] for i in torch.randperm(len(rows), generator=g).tolist()]
        batches = allocate(self.total // self.group, self.weights)
        draws = [self._draws(s, n * self.group, epoch) for s, n in enumerate(batches)]
        labels = [s for s, n in enumerate(batches) for _ in range(n)]
        order: list[int] = []
        taken = [0] * len(batches)
        for i in torch.randperm(len(labels), generator=g).tolist():
            s = labels[i]
            order += draws[s][taken[s]: taken[s] + self.group]
            taken[s] += self.group
        return order

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.epoch, self.epoch + self.epochs):
            base = epoch * self.total
            for row in self.epoch_order(epoch):
                yield base + row
