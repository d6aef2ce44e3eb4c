"""``infoloob``: InfoLOOB, the positive left out of the denominator (CLOOB; ml-jku/cloob).

Fürst et al. 2022. For a pair (a, b), rows A, B, scale s = 1/τ and row i:

``LOOB(a→b) = mean_i [ -s·a_i·b_i + log Σ_{j≠i} e^{s·a_i·b_j} ]``

and, as CLOOB's ``infoLOOB_loss`` (which multiplies by τ so that the gradient's size does not
grow with s), ``L_ab = τ · (LOOB(a→b) + LOOB(b→a))``. The objective is the mean (or sum)
over pairs; a row missing either modality takes no part in that pair.

**CLOOB proper** (``hopfield_beta`` set): before the loss, each embedding is replaced by a
modern-Hopfield retrieval from the batch's stored patterns,
``U(state | stored) = normalise(softmax(β · state · storedᵀ) · stored)``, and
``L_ab = τ · (LOOB(U(a|a) → U(b|a)) + LOOB(U(b|b) → U(a|b)))``: both directions retrieve
from the anchor's own modality and the other one, as CLOOB's ``hopfield_retrieval``. The
stored patterns are the pair's rows of the whole (gathered) batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.objectives.base import (
    Rows,
    Shard,
    SummedSimilarityObjective,
    resolve_pairs,
)
from anymodal.objectives.clip import pairwise_terms
from anymodal.objectives.dcl import leave_one_out_lse
from anymodal.objectives.pairs import PairSelection
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "InfoLOOBConfig", "InfoLOOBLoss", "hopfield_retrieval"]


@dataclass
class InfoLOOBConfig(PairSelection):
    """Parameters of ``infoloob``.

    Args:
        hopfield_beta: the inverse temperature β of the Hopfield retrieval (CLOOB proper;
            the paper uses 8 to 14.3); ``None``: plain InfoLOOB.
    """

    hopfield_beta: float | None = None


def hopfield_retrieval(state: Tensor, stored: Tensor, beta: float) -> Tensor:
    """``normalise(softmax(β · state · storedᵀ) · stored)``: one modern-Hopfield update.

    Shapes:
        state: ``[n, D]``; stored: ``[C, D]``; returns ``[n, D]``.
    """
    attention = torch.softmax(beta * (state @ stored.T), dim=-1)
    return torch.nn.functional.normalize(attention @ stored, dim=-1)


class InfoLOOBLoss(SummedSimilarityObjective):
    """InfoLOOB / CLOOB. See the module docstring.

    Output keys: ``loss``; per pair ``<a>_<b>_loss`` and ``<a>_<b>_rows``.
    """

    name = "infoloob"

    def __init__(self, config: InfoLOOBConfig | None = None) -> None:
        super().__init__()
        self.config = config or InfoLOOBConfig()
        beta = self.config.hopfield_beta
        if beta is not None and beta <= 0:
            raise ConfigError(f"infoloob hopfield_beta must be > 0 or null, got {beta}")

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean (or sum) of the pair losses, and each pair's parts."""
        pairs = resolve_pairs(shard.names, self.config.pairs, self.config.anchor, self.name)

        def pair_loss(rows: Rows, a: str, b: str) -> Tensor:
            return (self._direction(shard, rows, a, b)
                    + self._direction(shard, rows, b, a)) / shard.scale

        return pairwise_terms(shard, pairs, self.config.reduction, pair_loss)

    def _views(self, shard: Shard, rows: Rows, a: str, b: str) -> tuple[Tensor, Tensor]:
        """This process's anchors ``[n_v, D]`` and every candidate ``[count, D]``."""
        mine, anchors, others = (rows.mine(shard.local[a]), rows.every(shard.full[a]),
                                 rows.every(shard.full[b]))
        beta = self.config.hopfield_beta
        if beta is None:
            return mine, others
        # CLOOB: the anchors retrieve from their own modality, the candidates from the
        # anchor's modality (p_xx and p_xy of ml-jku/cloob).
        return hopfield_retrieval(mine, anchors, beta), hopfield_retrieval(others, anchors, beta)

    def _direction(self, shard: Shard, rows: Rows, a: str, b: str) -> Tensor:
        """This process's share of ``LOOB(a→b)``."""
        anchors, candidates = self._views(shard, rows, a, b)
        logits = shard.scale * (anchors @ candidates.T)  # [n_v, count]
        index = torch.arange(anchors.shape[0], device=anchors.device)
        loss = leave_one_out_lse(logits, rows.targets) - logits[index, rows.targets]
        return shard.share(loss.sum(), rows.count)


SPEC = ObjectiveSpec(
    name="infoloob",
    factory=InfoLOOBLoss,
    config_cls=InfoLOOBConfig,
    description="InfoLOOB, optionally with Hopfield retrieval: CLOOB (ml-jku/cloob)",
)
