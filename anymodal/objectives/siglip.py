"""``siglip``: pairwise sigmoid loss with a learnable bias (open_clip's ``SigLipLoss``).

For a pair (a, b) with rows A, B, scale s and bias β:
``L_ab = -(1/N) Σ_ij log σ( z_ij (s·a_i·b_j + β) )``, ``z_ij = +1`` if ``i = j`` else ``-1``.
Every (row, column) pair is its own binary problem, so the loss needs no symmetrisation.
The pair options and the handling of missing rows are those of ``clip``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymodal.objectives.base import (
    Objective,
    Shard,
    count_tensor,
    resolve_pairs,
    summed_similarity,
)
from anymodal.objectives.clip import check_smoothing, combine_pairs
from anymodal.objectives.pairs import PairScales, PairSelection
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "SigLipConfig", "SigLipLoss"]


@dataclass
class SigLipConfig(PairSelection):
    """Parameters of ``siglip``.

    Args:
        init_bias: the initial value of the learnable bias β (the SigLIP paper's -10).
        label_smoothing: binary label smoothing ``ls``: positives' target ``1 - ls/2``,
            negatives' ``ls/2``.
        pair_scales: ``"a:b=10,c:d=20"``: those pairs use their own scale (see ``clip``).
        learn_pair_scales: learn the listed pair scales from those initial values.
    """

    init_bias: float = -10.0
    label_smoothing: float = 0.0
    pair_scales: str = ""
    learn_pair_scales: bool = False


class SigLipLoss(Objective):
    """Pairwise sigmoid loss; ``self.bias`` is a learnable scalar shared by every pair.

    Output keys: ``loss``; per pair ``<a>_<b>_loss`` and ``<a>_<b>_rows``.
    """

    name = "siglip"
    query_rule = "sum"
    #: ``model.center`` defaults to on: from a fresh encoder's one-direction embeddings the
    #: positives pull every row to the other modality's mean and each modality collapses
    #: (``anymodal.model.core.ProjectionHead``).
    center_default = True

    def __init__(self, config: SigLipConfig | None = None) -> None:
        super().__init__()
        self.config = config or SigLipConfig()
        self.bias = nn.Parameter(torch.tensor(float(self.config.init_bias)))
        check_smoothing(self.config.label_smoothing, self.name)
        self.pair_scales = PairScales(self.config.pair_scales, self.config.learn_pair_scales,
                                      self.name)

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean (or sum) of the pair losses, and each pair's parts."""
        pairs = resolve_pairs(shard.names, self.config.pairs, self.config.anchor, self.name)
        parts: dict[str, Tensor] = {}
        used: list[Tensor] = []
        for a, b in pairs:
            pair, count = self._pair(shard, a, b)
            parts[f"{a}_{b}_loss"] = pair
            parts[f"{a}_{b}_rows"] = count_tensor(count, pair)
            if count >= 2:
                used.append(pair)
        return combine_pairs(used, self.config.reduction, shard.tie), parts

    def _pair(self, shard: Shard, a: str, b: str) -> tuple[Tensor, int]:
        """This process's share of ``L_ab``: its rows of a against every row of b."""
        rows = shard.select(shard.present[a] & shard.present[b])
        if rows.count < 2:
            return shard.tie, rows.count
        a_mine = rows.mine(shard.local[a])
        b_all = rows.every(shard.full[b])
        bias = self.bias.to(a_mine.dtype)
        scale = self.pair_scales.scale(shard.scale, a, b)
        logits = scale * (a_mine @ b_all.T) + bias  # [n_v, count]
        positive = logits[torch.arange(len(rows.local), device=logits.device), rows.targets]
        # With target y, the term is (1 - y)·softplus(x) + y·softplus(-x). Every pair is
        # first taken as a negative (y = ls/2), then the diagonal is corrected to the
        # positive's target (y = 1 - ls/2): no [n_v, count] label matrix.
        low = self.config.label_smoothing / 2
        loss_sum = ((1 - low) * F.softplus(logits) + low * F.softplus(-logits)).sum()
        keep = 1 - 2 * low
        loss_sum = loss_sum + keep * (F.softplus(-positive) - F.softplus(positive)).sum()
        return shard.share(loss_sum, rows.count), rows.count

    def score(
        self, query: Mapping[str, Tensor], candidates: Tensor, logit_scale: Tensor | float,
        missing: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """``sum_q (s · q cᵀ + β)``: the summed pair logits of each query modality.

        Shapes:
            query: ``{m: [Q, D]}``; candidates: ``[C, D]``; returns ``[Q, C]``.
        """
        bias = self.bias.to(candidates.dtype)
        return summed_similarity(query, candidates, logit_scale) + len(query) * bias


SPEC = ObjectiveSpec(
    name="siglip",
    factory=SigLipLoss,
    config_cls=SigLipConfig,
    description="pairwise sigmoid loss with a learnable bias (open_clip SigLipLoss)",
)
