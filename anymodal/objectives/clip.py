"""``clip``: symmetric InfoNCE over pairs of modalities (open_clip's ``ClipLoss``).

For a pair (a, b) with rows A, B and scale s:
``L_ab = ( CE(s·A Bᵀ, diag) + CE(s·B Aᵀ, diag) ) / 2``. The objective is the mean (or the
sum) of ``L_ab`` over every unordered pair, or over the pairs ``(anchor, other)``
(ImageBind / LanguageBind style). A row missing either modality of a pair takes no part
in that pair, neither as a query nor as a negative.

Options (:mod:`anymodal.objectives.pairs`): label smoothing of the cross-entropies,
per-pair scales (fixed or learned) instead of the shared one, per-pair loss weights
(a weighted mean of the pairs), and hard-negative weighting:
HCL's β and LLaVE's α·sg(s) boost on the negative logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.objectives.base import (
    Rows,
    Shard,
    SummedSimilarityObjective,
    count_tensor,
    resolve_pairs,
)
from anymodal.objectives.pairs import (
    PairScales,
    PairSelection,
    PairWeights,
    hard_negative_logits,
)
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "ClipConfig", "ClipLoss", "check_smoothing", "combine_pairs", "pairwise_terms"]


@dataclass
class ClipConfig(PairSelection):
    """Parameters of ``clip``.

    Args:
        label_smoothing: label smoothing of both cross-entropies, in [0, 1).
        pair_scales: ``"a:b=20,c:d=10"``: those pairs use their own scale.
        learn_pair_scales: learn the listed pair scales from those initial values.
        hard_negative_beta: HCL's β (0: off); negatives weighted by ``e^{β ℓ}``.
        hard_negative_alpha: LLaVE's α (0: off); ``α · sg(cos)`` added to negative logits.
        pair_weights: ``"a:b=1,c:d=0.5"``: each pair's loss weight in the (weighted) mean
            or sum; unlisted pairs weigh 1.
    """

    label_smoothing: float = 0.0
    pair_scales: str = ""
    learn_pair_scales: bool = False
    hard_negative_beta: float = 0.0
    hard_negative_alpha: float = 0.0
    pair_weights: str = ""


def check_smoothing(value: float, objective: str) -> float:
    """``value`` if it is a label smoothing in [0, 1), else a :class:`ConfigError`."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{objective} label_smoothing must be in [0, 1), got {value}")
    return value


def combine_pairs(losses: list[Tensor], reduction: str, zero: Tensor,
                  weights: list[float] | None = None) -> Tensor:
    """Sum or mean of the pair losses that took part (``zero`` when none did).

    Args:
        losses: the pairs' losses.
        reduction: ``"mean"`` or ``"sum"``.
        zero: returned when no pair took part.
        weights: one weight per loss (``None``: all 1); the mean is then weighted,
            ``Σ w L / Σ w``.
    """
    if not losses:
        return zero
    if weights is None:
        total = torch.stack(losses).sum()
        return total / len(losses) if reduction == "mean" else total
    total = sum((w * loss for w, loss in zip(weights, losses, strict=True)), zero * 0)
    return total / sum(weights) if reduction == "mean" else total


def pairwise_terms(shard: Shard, pairs: list[tuple[str, str]], reduction: str,
                   pair_loss: Callable[[Rows, str, str], Tensor]
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """Each pair's loss over the rows that have both modalities, and their mean or sum.

    Args:
        shard: the objective's view of the batch.
        pairs: the modality pairs ``(a, b)``.
        reduction: ``"mean"`` or ``"sum"`` over the pairs with at least two rows.
        pair_loss: ``(rows, a, b) -> loss`` of one pair, called when it has two rows or more.

    Returns:
        The combined loss, and ``<a>_<b>_loss`` / ``<a>_<b>_rows`` per pair.
    """
    parts: dict[str, Tensor] = {}
    used: list[Tensor] = []
    for a, b in pairs:
        rows = shard.select(shard.present[a] & shard.present[b])
        pair = shard.tie
        if rows.count >= 2:
            pair = pair_loss(rows, a, b)
            used.append(pair)
        parts[f"{a}_{b}_loss"] = pair
        parts[f"{a}_{b}_rows"] = count_tensor(rows.count, pair)
    return combine_pairs(used, reduction, shard.tie), parts


class ClipLoss(SummedSimilarityObjective):
    """Pairwise symmetric InfoNCE. See the module docstring.

    Output keys: ``loss``; per pair ``<a>_<b>_loss``, ``<a>_to_<b>_loss``,
    ``<b>_to_<a>_loss`` and ``<a>_<b>_rows`` (rows that have both modalities).
    """

    name = "clip"

    def __init__(self, config: ClipConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClipConfig()
        check_smoothing(self.config.label_smoothing, self.name)
        self.pair_scales = PairScales(self.config.pair_scales, self.config.learn_pair_scales,
                                      self.name)
        self.pair_weights = PairWeights(self.config.pair_weights, self.name)

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The (weighted) mean or sum of the pair losses, and each pair's parts."""
        pairs = resolve_pairs(shard.names, self.config.pairs, self.config.anchor, self.name)
        self.pair_weights.check(list(shard.names), self.name)
        parts: dict[str, Tensor] = {}
        used: list[Tensor] = []
        weights: list[float] = []
        for a, b in pairs:
            a_to_b, b_to_a, count = self._pair_terms(shard, a, b)
            pair = (a_to_b + b_to_a) / 2
            parts.update({
                f"{a}_{b}_loss": pair,
                f"{a}_to_{b}_loss": a_to_b,
                f"{b}_to_{a}_loss": b_to_a,
                f"{a}_{b}_rows": count_tensor(count, pair),
            })
            if count >= 2:
                used.append(pair)
                weights.append(self.pair_weights.weight(a, b))
        return combine_pairs(used, self.config.reduction, shard.tie,
                             weights if self.pair_weights.values else None), parts

    def _pair_terms(self, shard: Shard, a: str, b: str) -> tuple[Tensor, Tensor, int]:
        """This process's shares of CE(a→b) and CE(b→a) over rows that have a and b."""
        rows = shard.select(shard.present[a] & shard.present[b])
        if rows.count < 2:
            return shard.tie, shard.tie, rows.count
        a_all, b_all = rows.every(shard.full[a]), rows.every(shard.full[b])
        a_mine, b_mine = rows.mine(shard.local[a]), rows.mine(shard.local[b])
        scale = self.pair_scales.scale(shard.scale, a, b)
        sim_ab = a_mine @ b_all.T  # [n_v, count]
        # In one process the two similarity matrices are transposes of each other.
        sim_ba = sim_ab.T if shard.world == 1 else b_mine @ a_all.T
        a_to_b = self._cross_entropy(scale * sim_ab, sim_ab, rows.targets)
        b_to_a = self._cross_entropy(scale * sim_ba, sim_ba, rows.targets)
        return shard.share(a_to_b, rows.count), shard.share(b_to_a, rows.count), rows.count

    def _cross_entropy(self, logits: Tensor, similarity: Tensor, targets: Tensor) -> Tensor:
        """Summed CE of the rows, after the hard-negative options, with label smoothing."""
        config = self.config
        logits = hard_negative_logits(logits, targets, similarity, config.hard_negative_beta,
                                      config.hard_negative_alpha)
        return F.cross_entropy(logits, targets, label_smoothing=config.label_smoothing,
                               reduction="sum")


SPEC = ObjectiveSpec(
    name="clip",
    factory=ClipLoss,
    config_cls=ClipConfig,
    description="symmetric InfoNCE over pairs of modalities (open_clip ClipLoss)",
)
