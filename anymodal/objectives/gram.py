"""``gram``: contrastive loss on the volume spanned by a tuple (ispamm/GRAM).

``V[i, j] = Vol(anchor[i], m_2[j], ..., m_k[j])`` (the non-anchor modalities share the
column index j); aligned tuples span a small volume, so the logits are ``-s·V``:
``L = ( CE(-s·V, diag, ls) + CE(-s·Vᵀ, diag, ls) ) / 2`` with label smoothing ``ls``
(0.1, as the reference). Volumes come from :mod:`anymodal.objectives.volume`.

Rows with hidden modalities (``present``; subset-consistent training) are scored on the
volume of the members they have: rows with the same members form a group, scored against
every row that has those members (see :func:`groups`), so a query of two modalities is
ranked by the two-volume the loss trained. ``missing="drop"`` keeps complete rows only.
Across processes: this process's anchor rows against every tuple (rows of ``V``), and
this process's tuples against every anchor row (columns of ``V``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

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
from anymodal.objectives.clip import check_smoothing
from anymodal.objectives.groups import Group, groups
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
        check_smoothing(self.config.label_smoothing, self.name)
        self.volume_fn = gram_volume

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean of the two directions' cross-entropies, and each direction.

        Rows are grouped by the members they have (see :func:`groups`); each group's
        rows are scored against the rows that have at least those members.
        """
        a = check_anchor(self.config.anchor, shard.names, self.name)
        present = {m: shard.present[m] for m in shard.names}
        if self.config.missing == "drop":
            complete = shard.complete_rows()
            present = {m: complete for m in shard.names}
        found = groups(present, a)
        count = int(sum(int(g.rows.sum()) for g in found))
        if count < 2:
            forward_term = backward_term = loss = shard.tie
        else:
            sums = [self._group_sums(shard, g) for g in found]
            forward_term = shard.share(torch.stack([f for f, _ in sums]).sum(), count)
            backward_term = shard.share(torch.stack([b for _, b in sums]).sum(), count)
            loss = (forward_term + backward_term) / 2
        parts = {
            f"{a}_to_others_loss": forward_term,
            f"others_to_{a}_loss": backward_term,
            "rows": count_tensor(count, shard.scale),
        }
        return loss, parts

    def _group_sums(self, shard: Shard, group: Group) -> tuple[Tensor, Tensor]:
        """Summed cross-entropies of this process's rows of ``group``, both directions."""
        mine = shard.select(group.candidates, group.rows)
        if mine.local.numel() == 0:
            return shard.tie, shard.tie
        targets = mine.targets  # row i's position among the group's candidate rows
        anchors_all = shard.full[group.anchor][group.candidates]
        tuples_all = [shard.full[m][group.candidates] for m in group.members]
        anchors_mine = shard.local[group.anchor][mine.local]
        tuples_mine = [shard.local[m][mine.local] for m in group.members]
        # Logits -s·V: this process's anchors against every candidate tuple, and this
        # process's tuples against every candidate anchor.
        rows_logits = -shard.scale * self.volume_fn(anchors_mine, tuples_all)
        if shard.world == 1 and bool(torch.equal(group.rows, group.candidates)):
            cols_logits = rows_logits.T  # the whole batch, one group: V once
        else:
            cols_logits = -shard.scale * self.volume_fn(anchors_all, tuples_mine).T
        ls = self.config.label_smoothing
        return (F.cross_entropy(rows_logits, targets, label_smoothing=ls, reduction="sum"),
                F.cross_entropy(cols_logits, targets, label_smoothing=ls, reduction="sum"))

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
