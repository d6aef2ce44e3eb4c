"""Synthetic multi-modal datasets built from each plugin's ``synthesize``."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import Dataset

from anymodal.types import ModalitySpec

from .collate import Row

__all__ = ["SyntheticDataset"]


class SyntheticDataset(Dataset[Row]):
    """Rows whose modalities share a class label, so that they form matching tuples.

    Row ``i`` is the same for the same ``seed`` whatever the process, worker or order of
    access (each row has its own generator), which keeps resumed and distributed runs exact.

    Args:
        modalities: modality key -> bound spec.
        size: number of rows.
        seed: the split's seed (give train and val different ones).
        missing: modality key -> fraction of rows without that modality (every row keeps
            at least one modality).
    """

    def __init__(self, modalities: Mapping[str, ModalitySpec], size: int, seed: int = 0,
                 missing: Mapping[str, float] | None = None) -> None:
        self.modalities = dict(modalities)
        self.size = int(size)
        self.seed = int(seed)
        self.missing = {k: float(v) for k, v in (missing or {}).items()}
        unknown = set(self.missing) - set(self.modalities)
        if unknown:
            raise KeyError(f"missing rates for unknown modalities {sorted(unknown)}")
        self.num_classes = min(max(spec.num_classes, 1) for spec in self.modalities.values())

    def __len__(self) -> int:
        return self.size

    def _generator(self, index: int, slot: int) -> torch.Generator:
        return torch.Generator().manual_seed(
            (self.seed * 1_000_003 + index * 1_009 + slot * 97) % (2**63)
        )

    def __getitem__(self, index: int) -> Row:
        if not 0 <= index < self.size:
            raise IndexError(index)
        g = self._generator(index, 0)
        label = int(torch.randint(self.num_classes, (1,), generator=g))
        keys = list(self.modalities)
        keep = [k for k in keys
                if float(torch.rand((), generator=g)) >= self.missing.get(k, 0.0)]
        if not keep:
            keep = [keys[int(torch.randint(len(keys), (1,), generator=g))]]
        items = {}
        for slot, key in enumerate(keys, start=1):
            if key in keep:
                spec = self.modalities[key]
                items[key] = spec.synthesize(1, self._generator(index, slot),
                                             torch.tensor([label]))[0]
        return {"id": f"syn-{self.seed}-{index}", "label": label, "items": items}
