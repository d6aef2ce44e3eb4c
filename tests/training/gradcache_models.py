"""A small float64 model with MultiModalModel's embedding contract, and batches for it.

``MultiModalModel`` computes its heads in float32 (``features.float()``), so the float64
exactness checks of GradCache use this model instead: one MLP per modality (optional
dropout and BatchNorm), a learned embedding for missing rows, a learned logit scale and
a real objective from the registry. The real model is checked in float32 in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

import anymodal
from anymodal.objectives.row_state import batch_rows
from anymodal.types import PRESENT_KEY, Batch

IN_DIM, DIM = 6, 5
ROWS = 1000  # rows of the pretend training set (objectives with a state per row)


class TinyModel(nn.Module):
    """Encoders + missing embeddings + logit scale + objective, in float64.

    Args:
        keys: modality keys.
        objective: registry name; ``params`` its parameters.
        dropout: dropout inside each encoder.
        batchnorm: a BatchNorm1d inside each encoder.
    """

    def __init__(self, keys: list[str], objective: str, params: Mapping[str, Any] | None = None,
                 dropout: float = 0.0, batchnorm: bool = False, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.encoders = nn.ModuleDict()
        for key in keys:
            layers: list[nn.Module] = [nn.Linear(IN_DIM, 12)]
            if batchnorm:
                layers.append(nn.BatchNorm1d(12))
            layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(12, DIM)]
            self.encoders[key] = nn.Sequential(*layers)
        self.missing = nn.ParameterDict({k: nn.Parameter(torch.randn(DIM)) for k in keys})
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(3.0)))
        self.objective = anymodal.create_objective(objective, **dict(params or {}))
        if hasattr(self.objective, "bind_rows"):  # global_contrastive: a state per row
            self.objective.bind_rows(ROWS, keys)
        self.double()

    def logit_scale(self) -> Tensor:
        return self.log_logit_scale.exp()

    def embed_batch(self, batch: Batch) -> dict[str, Tensor]:
        """As ``MultiModalModel.embed_batch``: normalised rows, the missing embedding where
        a row lacks the modality."""
        present = batch.get(PRESENT_KEY, {})
        out: dict[str, Tensor] = {}
        for key, encoder in self.encoders.items():
            if key not in batch and key not in present:
                continue
            rows = present.get(key)
            filler = nn.functional.normalize(self.missing[key], dim=-1)
            if rows is not None and not bool(rows.any()):
                out[key] = filler.expand(rows.numel(), -1)
                continue
            embedding = nn.functional.normalize(encoder(batch[key]), dim=-1)
            if rows is not None and not bool(rows.all()):
                index = rows.nonzero().squeeze(1)
                full = filler.to(embedding.dtype).expand(rows.numel(), -1)
                embedding = full.index_put((index,), embedding)
            out[key] = embedding
        return out

    def compute_loss(self, batch: Batch) -> dict[str, Tensor]:
        embeddings = self.embed_batch(batch)
        present = {k: v for k, v in batch.get(PRESENT_KEY, {}).items() if k in embeddings}
        with batch_rows(self.objective, batch):
            return self.objective(embeddings, self.logit_scale(), present or None)


def make_batch(keys: list[str], rows: int, seed: int = 0, missing: bool = True) -> Batch:
    """A collated batch: every modality holds only its present rows; row 0 is complete,
    and a few rows lack one modality when ``missing``."""
    g = torch.Generator().manual_seed(seed)
    batch: Batch = {PRESENT_KEY: {}}
    for m, key in enumerate(keys):
        mask = torch.ones(rows, dtype=torch.bool)
        if missing:
            mask[torch.arange(rows) % (5 + m) == (m + 1)] = False
        batch[PRESENT_KEY][key] = mask
        batch[key] = torch.randn(int(mask.sum()), IN_DIM, generator=g, dtype=torch.float64)
    batch["rows"] = torch.randperm(ROWS, generator=g)[:rows]  # training-set indices
    return batch


def rows_of(batch: Batch, keys: list[str], start: int, stop: int) -> Batch:
    """Rows ``start:stop`` of a batch from :func:`make_batch` (a process's share)."""
    out: Batch = {PRESENT_KEY: {}}
    for key in keys:
        mask = batch[PRESENT_KEY][key]
        first, last = int(mask[:start].sum()), int(mask[:stop].sum())
        out[PRESENT_KEY][key] = mask[start:stop].clone()
        out[key] = batch[key][first:last].clone()
    if "rows" in batch:
        out["rows"] = batch["rows"][start:stop].clone()
    return out


def grads_of(model: nn.Module) -> dict[str, Tensor | None]:
    return {name: (None if p.grad is None else p.grad.detach().clone())
            for name, p in model.named_parameters()}


CASES: list[tuple[str, dict[str, Any], int]] = [
    ("clip", {}, 3),
    ("symile", {"negatives": "n_squared"}, 3),
    ("gram", {}, 3),
]
