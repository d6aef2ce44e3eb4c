"""``gram``: contrastive loss on the volume spanned by a tuple (ispamm/GRAM).

``V[i, j] = Vol(anchor[i], m_2[j], ..., m_k[j])`` (the non-anchor modalities share the
column index j); aligned tuples span a small volume, so the logits are ``-s·V``:
``L = ( CE(-s·V, diag, ls) + CE(-s·Vᵀ, diag, ls) ) / 2`` with label smoothing ``ls``
(0.1, as the reference). Volumes come from :mod:`anymodal.objectives.volume`.
Across processes: this process's anchor rows against every tuple (rows of ``V``), and
this process's tuples against every anchor row (columns of ``V``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.objectives.base import (
    MISSING_CHOICES,
    Objective,
    Shard,
    as_scale,
    check_anchor,
    check_choice,
    check_query,
    count_tensor,
)
from anymodal.objectives.volume import gram_volume
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "GramConfig", "GramLoss"]


@dataclass
class GramConfig:
    """Parameters of ``gram``.

    Args:
        anchor: the anchor modality (default: the first one).
        label_smoothing: label smoothing of both cross-entropies.
        missing: ``"embedding"`` (use rows as given) or ``"drop"`` (only complete rows).
    """

    anchor: str | None = None
    label_smoothing: float = 0.1
    missing: str = "embedding"


class GramLoss(Objective):
    """GRAM. See the module docstring.

    Output keys: ``loss``, ``<anchor>_to_others_loss`` (rows of V),
    ``others_to_<anchor>_loss`` (columns of V), ``rows``.

    Attributes:
        volume_fn: ``(anchor [P, D], others list of [Q, D]) -> V [P, Q]``; the closed form
            :func:`~anymodal.objectives.volume.gram_volume` by default. The benchmark sets
            :func:`~anymodal.objectives.volume.volume_torch_det` to time the reference way.
    """

    name = "gram"
    query_rule = "span"
    subset_training_default = True

    def __init__(self, config: GramConfig | None = None) -> None:
        super().__init__()
        self.config = config or GramConfig()
        check_choice(self.config.missing, MISSING_CHOICES, "gram missing")
        if not 0.0 <= self.config.label_smoothing < 1.0:
            raise ConfigError(
                f"gram label_smoothing must be in [0, 1), got {self.config.label_smoothing}"
            )
        self.volume_fn = gram_volume

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean of the two directions' cross-entropies, and each direction."""
        a = check_anchor(self.config.anchor, shard.names, self.name)
        others = [m for m in shard.names if m != a]
        rows = shard.select(shard.rows_for(self.config.missing))
        ls = self.config.label_smoothing
        if rows.count < 2:
            forward_term = backward_term = loss = shard.tie
        else:
            anchors_all = rows.every(shard.full[a])
            tuples_all = [rows.every(shard.full[m]) for m in others]
            anchors_mine = rows.mine(shard.local[a])
            tuples_mine = [rows.mine(shard.local[m]) for m in others]
            # Logits -s·V: rows are this process's anchors, columns every tuple; and the
            # transposed direction: this process's tuples against every anchor.
            rows_logits = -shard.scale * self.volume_fn(anchors_mine, tuples_all)
            if shard.world == 1:  # this process's rows are the whole batch: V once
                cols_logits = rows_logits.T
            else:
                cols_logits = -shard.scale * self.volume_fn(anchors_all, tuples_mine).T
            forward_sum = F.cross_entropy(rows_logits, rows.targets, label_smoothing=ls,
                                          reduction="sum")
            backward_sum = F.cross_entropy(cols_logits, rows.targets, label_smoothing=ls,
                                           reduction="sum")
            forward_term = shard.share(forward_sum, rows.count)
            backward_term = shard.share(backward_sum, rows.count)
            loss = (forward_term + backward_term) / 2
        parts = {
            f"{a}_to_others_loss": forward_term,
            f"others_to_{a}_loss": backward_term,
            "rows": count_tensor(rows.count, shard.scale),
        }
        return loss, parts

    def score(
        self, query: Mapping[str, Tensor], candidates: Tensor, logit_scale: Tensor | float,
        missing: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """``-s · Vol(candidate, query modalities...)``: small volume ranks first.

        Shapes:
            query: ``{m: [Q, D]}``; candidates: ``[C, D]``; returns ``[Q, C]``.
        """
        tensors = check_query(query, candidates)
        volume = self.volume_fn(candidates, tensors)  # [C, Q]
        return -as_scale(logit_scale, candidates) * volume.T


SPEC = ObjectiveSpec(
    name="gram",
    factory=GramLoss,
    config_cls=GramConfig,
    description="contrastive loss on the Gram volume of a tuple (ispamm/GRAM)",
)
