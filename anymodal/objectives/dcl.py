"""``dcl``: Decoupled Contrastive Learning and its weighted form DCLW, across modalities.

Yeh et al. 2022 (lightly's ``DCLLoss`` / ``DCLWLoss``). For a pair (a, b), rows A, B, scale
s, and row i (``a_i`` against the other modality's rows):

``ℓ_i = -w_i · s·a_i·b_i + log Σ_{j≠i} e^{s·a_i·b_j} [+ log Σ_{j≠i} e^{s·a_i·a_j}]``

The positive is *decoupled* from the denominator (it is not in the log-sum-exp), the
bracketed intra-modal term is the option ``intra_modal`` (lightly always includes it; for
two views of one modality it is the other view's negatives), and ``w_i = 1`` (DCL) or the
negative von Mises-Fisher weight ``w_i = 2 - N · softmax_i(a_i·b_i / σ)`` (DCLW, detached).
``L_ab = (mean_i ℓ_i(a→b) + mean_i ℓ_i(b→a)) / 2``; the objective is the mean (or sum)
over pairs, and a row missing either modality takes no part in that pair (as ``clip``).
DCLW's softmax runs over the pair's rows of the whole (gathered) batch, so two processes
give the one-process loss.
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
from anymodal.objectives.pairs import PairSelection
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "DCLConfig", "DCLLoss", "leave_one_out_lse"]


@dataclass
class DCLConfig(PairSelection):
    """Parameters of ``dcl``.

    Args:
        weighted: DCLW's von Mises-Fisher weight on the positive term.
        sigma: DCLW's weight temperature (lightly's default 0.5).
        intra_modal: add the same-modality negatives ``a_i·a_j`` (j ≠ i) as a second
            log-sum-exp, as lightly does for two views.
    """

    weighted: bool = False
    sigma: float = 0.5
    intra_modal: bool = False


def leave_one_out_lse(logits: Tensor, targets: Tensor) -> Tensor:
    """``log Σ_{j ≠ target} e^{logits[i, j]}`` per row: the positive left out.

    Shapes:
        logits: ``[n, C]``; targets: ``[n]``; returns ``[n]``.
    """
    rows = torch.arange(logits.shape[0], device=logits.device)
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[rows, targets] = True
    return logits.masked_fill(mask, float("-inf")).logsumexp(dim=-1)


class DCLLoss(SummedSimilarityObjective):
    """DCL / DCLW. See the module docstring.

    Output keys: ``loss``; per pair ``<a>_<b>_loss`` and ``<a>_<b>_rows``.
    """

    name = "dcl"

    def __init__(self, config: DCLConfig | None = None) -> None:
        super().__init__()
        self.config = config or DCLConfig()
        if self.config.sigma <= 0:
            raise ConfigError(f"dcl sigma must be > 0, got {self.config.sigma}")

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean (or sum) of the pair losses, and each pair's parts."""
        pairs = resolve_pairs(shard.names, self.config.pairs, self.config.anchor, self.name)

        def pair_loss(rows: Rows, a: str, b: str) -> Tensor:
            return (self._direction(shard, rows, a, b)
                    + self._direction(shard, rows, b, a)) / 2

        return pairwise_terms(shard, pairs, self.config.reduction, pair_loss)

    def _weights(self, shard: Shard, rows: Rows, a: str, b: str) -> Tensor | None:
        """DCLW's ``2 - N · softmax(a_i·b_i / σ)`` for this process's rows (no gradient)."""
        if not self.config.weighted:
            return None
        with torch.no_grad():
            aligned = (rows.every(shard.full[a]) * rows.every(shard.full[b])).sum(-1)
            weights = 2 - rows.count * torch.softmax(aligned / self.config.sigma, dim=0)
        return weights[rows.targets]

    def _direction(self, shard: Shard, rows: Rows, a: str, b: str) -> Tensor:
        """This process's share of ``mean_i ℓ_i(a→b)``."""
        mine = rows.mine(shard.local[a])  # [n_v, D]
        cross = shard.scale * (mine @ rows.every(shard.full[b]).T)  # [n_v, count]
        index = torch.arange(mine.shape[0], device=mine.device)
        positive = cross[index, rows.targets]
        weights = self._weights(shard, rows, a, b)
        if weights is not None:
            positive = positive * weights.to(positive.dtype)
        loss = leave_one_out_lse(cross, rows.targets) - positive
        if self.config.intra_modal:
            intra = shard.scale * (mine @ rows.every(shard.full[a]).T)
            loss = loss + leave_one_out_lse(intra, rows.targets)
        return shard.share(loss.sum(), rows.count)


SPEC = ObjectiveSpec(
    name="dcl",
    factory=DCLLoss,
    config_cls=DCLConfig,
    description="decoupled contrastive learning, DCL / DCLW (Yeh et al. 2022; lightly)",
)
