"""Subset-consistent training: each row hides a random subset of its modalities.

A query made of some modalities is scored by the objective on a sub-tuple (Symile with the
learned missing embeddings standing in for the absent members, GRAM on the volume of the
members present). A loss that only ever sees complete rows never trains those sub-tuples.
:class:`EpochRows` hides, per row, a random subset of the modalities it has: a hidden key
is simply absent from the row's items, so collate's ``present`` masks and the model's
learned missing embeddings handle it like any missing modality.

The hidden set of row ``i`` in epoch ``e`` comes from a generator seeded by
``(seed, e, i)`` alone, so it is the same whatever the number of processes or loader
workers, and a resumed run draws the same ones. Loader workers are separate processes that
keep their own copy of the dataset (for ever, with persistent workers), so the epoch cannot
be set on the dataset: :class:`EpochSampler` passes it inside each index instead
(``epoch * len(dataset) + row``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from anymodal.errors import ConfigError

from .collate import BadRow, Row

__all__ = ["EpochRows", "EpochSampler", "ModalityDropout", "hidden_modalities"]


@dataclass(frozen=True)
class ModalityDropout:
    """Which rows hide which modalities.

    With probability ``p`` a row that has more than ``min_present`` modalities keeps a
    random subset of them: its size is uniform in ``[min_present, present - 1]`` and its
    members uniform among the subsets of that size. So every sub-tuple size that a query
    can use is trained about equally often.

    Args:
        p: the fraction of rows that hide something (0 turns it off).
        min_present: modalities a row keeps at least (2: every row still forms a pair).
        seed: the run's seed.
    """

    p: float = 0.0
    min_present: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"train.modality_dropout.p is {self.p}; expected 0 <= p <= 1")
        if self.min_present < 1:
            raise ConfigError(f"train.modality_dropout.min_present is {self.min_present}; "
                              "expected at least 1")

    @property
    def active(self) -> bool:
        """Whether any row hides anything (``p > 0``)."""
        return self.p > 0


def hidden_modalities(present: list[str], dropout: ModalityDropout, epoch: int, row: int
                      ) -> set[str]:
    """The modalities row ``row`` hides in epoch ``epoch`` (a pure function of its args).

    Args:
        present: the row's modality keys, in a fixed order.
        dropout: the hiding rule.
        epoch: the pass over the data.
        row: the row's index in the dataset.
    """
    if not dropout.active or len(present) <= dropout.min_present:
        return set()
    # Distinct odd multipliers keep (seed, epoch, row) triples from colliding.
    g = torch.Generator().manual_seed(
        (dropout.seed * 1_000_003 + epoch * 998_244_353 + row * 7_919 + 17) % (2**63))
    if float(torch.rand((), generator=g)) >= dropout.p:
        return set()
    keep = int(torch.randint(dropout.min_present, len(present), (), generator=g))
    order = torch.randperm(len(present), generator=g).tolist()
    return {present[i] for i in order[keep:]}


class EpochSampler(Sampler[int]):
    """A seeded shuffle whose indices carry the epoch: ``epoch * n + row``.

    Epoch ``e`` visits the rows in ``torch.randperm(n)`` drawn from a generator seeded with
    ``seed + e``: the order Accelerate's seedable sampler gives. Accelerate calls
    :meth:`set_epoch` (through ``DataLoaderShard.set_epoch``), and shards the batches of
    this sampler across processes as it does any other.

    With ``epochs > 1`` one pass of the sampler chains that many epochs, starting at the
    epoch set. A loader whose sampler ends drains its workers' prefetch queue and refills
    it at the next ``iter()`` (persistent workers or not), so every epoch boundary stalled
    the run for about one batch's decoding; chained epochs keep the queue full. A batch
    may then straddle two epochs (only the chain's last partial batch is dropped).

    Args:
        size: rows in the dataset.
        seed: the run's seed.
        epochs: epochs per pass.
    """

    def __init__(self, size: int, seed: int = 0, epochs: int = 1) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.epochs = max(1, int(epochs))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the first epoch of the next pass (Accelerate calls this)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size * self.epochs

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.epoch, self.epoch + self.epochs):
            g = torch.Generator().manual_seed(self.seed + epoch)
            base = epoch * self.size
            for row in torch.randperm(self.size, generator=g).tolist():
                yield base + row


class EpochRows(Dataset[Any]):
    """A map-style dataset read through :class:`EpochSampler` indices.

    Each row hides the modalities :func:`hidden_modalities` picks for its epoch, and
    carries its index in the wrapped set as ``"index"``.

    Args:
        dataset: the training set (rows ``{"id", "label", "items"}`` or :class:`BadRow`).
        dropout: the hiding rule (inactive: rows pass unchanged).
    """

    def __init__(self, dataset: Dataset[Any], dropout: ModalityDropout) -> None:
        self.dataset = dataset
        self.dropout = dropout
        self.size = len(dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Row | BadRow:
        epoch, row = divmod(int(index), self.size)
        item = self.dataset[row]
        if isinstance(item, BadRow):
            return item
        # The row's index in the training set travels to the batch (collate's "rows"):
        # objectives with a state per training row (global_contrastive) read it.
        item = {**item, "index": row}
        if not self.dropout.active:
            return item
        hidden = hidden_modalities(list(item["items"]), self.dropout, epoch, row)
        if not hidden:
            return item
        return {**item, "items": {k: v for k, v in item["items"].items() if k not in hidden}}

    def __getattr__(self, name: str) -> Any:
        # num_classes, path, rows...: whatever the wrapped set offers.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
