"""``mv_infonce`` and ``mv_dhel``: multi-view contrastive losses with modalities as views.

From "A Principled Framework for Multi-View Contrastive Learning" (pakoromilas/Multi-View-CL,
``models/losses.py``). With ``s(il, jm) = s · u_il · u_jm`` (row i of view l):

- MV-InfoNCE: ``pos_i = Σ_{l≠l'} e^{s(il,il')}``, ``neg_i = Σ_l Σ_{(j,m)≠(i,l)} e^{s(il,jm)}``.
- MV-DHEL: ``pos_i = Σ_{l<l'} e^{s(il,il')}``, ``neg_i = Π_l Σ_{j≠i} e^{s(il,jl)}``.

and ``L = -(1/N) Σ_i log(pos_i / neg_i)``. Both are computed as log-sum-exps (a product of
sums is a sum of log-sum-exps), never as exponentials, so they stay finite at s = 100.
Across processes: this process's rows against the gathered rows of every view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from anymodal.objectives.base import (
    MISSING_CHOICES,
    Rows,
    Shard,
    SummedSimilarityObjective,
    check_choice,
    count_tensor,
)
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC_DHEL", "SPEC_INFONCE", "MVDHELLoss", "MVInfoNCELoss", "MultiViewConfig"]


@dataclass
class MultiViewConfig:
    """Parameters of ``mv_infonce`` and ``mv_dhel``.

    Args:
        missing: ``"mask"`` (a row's hidden views take no part: neither in its positives,
            nor as anyone's negative; rows with fewer than two views are left out),
            ``"embedding"`` (use rows as given, the model's missing embedding as a view) or
            ``"drop"`` (only complete rows).
    """

    missing: str = "mask"


MISSING = ("mask", *MISSING_CHOICES)


def _positive_lse(views: Tensor, scale: Tensor, ordered: bool,
                  have: Tensor | None = None) -> Tensor:
    """``log Σ e^{s(il,il')}`` over view pairs of the same row: ordered (l≠l') or l<l'.

    Shapes:
        views: ``[M, n, D]``; have (which views each row has): ``[M, n]``; returns ``[n]``.
    """
    m = views.shape[0]
    sims = scale * torch.einsum("lnd,knd->lkn", views, views)  # [M, M, n]
    every_pair = torch.ones(m, m, dtype=torch.bool, device=views.device)
    keep = every_pair & ~torch.eye(m, dtype=torch.bool, device=views.device)
    if not ordered:
        keep = keep.triu(1)
    if have is not None:
        sims = sims.masked_fill(~(have[:, None, :] & have[None, :, :]), float("-inf"))
    return sims[keep].logsumexp(dim=0)


class _MultiView(SummedSimilarityObjective):
    """Shared forward: select rows, stack views, defer the negatives to the subclass."""

    #: positives over ordered view pairs l≠l' (MV-InfoNCE) or unordered l<l' (MV-DHEL).
    ordered_positives: bool = True

    def __init__(self, config: MultiViewConfig | None = None) -> None:
        super().__init__()
        self.config = config or MultiViewConfig()
        check_choice(self.config.missing, MISSING, f"{self.name} missing")

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss over the rows the ``missing`` policy keeps (part: ``rows``)."""
        have = None
        if self.config.missing == "mask":
            have = torch.stack([shard.present[m] for m in shard.names])  # [M, N]
            rows = shard.select(have.sum(dim=0) >= 2)
        else:
            rows = shard.select(shard.rows_for(self.config.missing))
        loss = self._loss(shard, rows, have) if rows.count >= 2 else shard.tie
        return loss, {"rows": count_tensor(rows.count, shard.scale)}

    def _loss(self, shard: Shard, rows: Rows, have: Tensor | None) -> Tensor:
        mine = torch.stack([rows.mine(shard.local[m]) for m in shard.names])  # [M, n_v, D]
        every = torch.stack([rows.every(shard.full[m]) for m in shard.names])  # [M, C, D]
        every_have = mine_have = None
        if have is not None:
            every_have = have[:, rows.keep]
            mine_have = every_have[:, rows.targets]
        negative = self._negative_lse(mine, every, rows.targets, shard.scale,
                                      mine_have, every_have)  # [n_v]
        positive = _positive_lse(mine, shard.scale, self.ordered_positives, mine_have)
        return shard.share((negative - positive).sum(), rows.count)

    def _negative_lse(
        self, mine: Tensor, every: Tensor, targets: Tensor, scale: Tensor,
        mine_have: Tensor | None, every_have: Tensor | None,
    ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class MVInfoNCELoss(_MultiView):
    """MV-InfoNCE: every other (row, view) is in the denominator, positives included."""

    name = "mv_infonce"
    ordered_positives = True
    #: ``model.center`` defaults to on (as ``siglip``): without it every view collapses
    #: onto one vector on the digits study (``benchmarks/results/objective_curves.md``).
    center_default = True
    #: ``model.logit_scale_init`` defaults to 5 (temperature 0.2, as SimCLR-style multi-view
    #: losses use): one soft-max over every (row, view) holds M·(M·N-1) logits, same-view
    #: rows included; at CLIP's 1/0.07 the digits study stays near chance for 60 steps even
    #: when centred, at 5 it learns (``benchmarks/results/objective_curves.md``).
    logit_scale_default = 5.0

    def _negative_lse(self, mine: Tensor, every: Tensor, targets: Tensor, scale: Tensor,
                      mine_have: Tensor | None = None,
                      every_have: Tensor | None = None) -> Tensor:
        """``log Σ_l Σ_{(j,m)≠(i,l)} e^{s(il,jm)}`` over the views rows have.

        Shapes:
            mine: ``[M, n, D]``; every: ``[M, C, D]``; targets: ``[n]``; mine_have:
            ``[M, n]``; every_have: ``[M, C]``; returns ``[n]``.
        """
        m, n, d = mine.shape
        c = every.shape[1]
        # Rows ordered (i, l) and columns (m, j), so that row i's terms are one contiguous
        # slice of M·M·C logits: no permuted copy of the [n, M, M, C] grid.
        by_row = mine.transpose(0, 1).reshape(n * m, d)
        sims = (scale * (by_row @ every.reshape(m * c, d).T)).view(n, m, m * c)
        views = torch.arange(m, device=mine.device)
        rows = torch.arange(n, device=mine.device).unsqueeze(1)
        # (il) against itself is not a term; written in place (mul does not keep its output).
        sims[rows, views, views * c + targets.unsqueeze(1)] = float("-inf")
        if mine_have is not None and every_have is not None:
            hidden = ~mine_have.T[:, :, None] | ~every_have.reshape(1, 1, m * c)
            sims = sims.masked_fill(hidden, float("-inf"))
        return sims.view(n, m * m * c).logsumexp(dim=-1)


class MVDHELLoss(_MultiView):
    """MV-DHEL: the denominator is a product over views of same-view negatives."""

    name = "mv_dhel"
    ordered_positives = False

    def _negative_lse(self, mine: Tensor, every: Tensor, targets: Tensor, scale: Tensor,
                      mine_have: Tensor | None = None,
                      every_have: Tensor | None = None) -> Tensor:
        """``Σ_l log Σ_{j≠i} e^{s(il,jl)}`` over the views row i has.

        The negatives of view l are the rows j that have view l; a view without any such
        row adds nothing.

        Shapes:
            mine: ``[M, n, D]``; every: ``[M, C, D]``; targets: ``[n]``; mine_have:
            ``[M, n]``; every_have: ``[M, C]``; returns ``[n]``.
        """
        sims = scale * torch.bmm(mine, every.transpose(1, 2))  # [M, n, C]
        rows = torch.arange(mine.shape[1], device=mine.device)
        sims[:, rows, targets] = float("-inf")  # in place, as in MV-InfoNCE
        if mine_have is None or every_have is None:
            return sims.logsumexp(dim=-1).sum(dim=0)
        sims = sims.masked_fill(~every_have[:, None, :], float("-inf"))
        used = mine_have & torch.isfinite(sims).any(dim=-1)  # [M, n]
        # An unused row of logits becomes zeros first: the log-sum-exp of -infs would give
        # NaN gradients even where its value is discarded.
        lse = sims.masked_fill(~used[..., None], 0.0).logsumexp(dim=-1)
        return torch.where(used, lse, torch.zeros_like(lse)).sum(dim=0)


SPEC_INFONCE = ObjectiveSpec(
    name="mv_infonce",
    factory=MVInfoNCELoss,
    config_cls=MultiViewConfig,
    description="multi-view InfoNCE with modalities as views (pakoromilas/Multi-View-CL)",
)

SPEC_DHEL = ObjectiveSpec(
    name="mv_dhel",
    factory=MVDHELLoss,
    config_cls=MultiViewConfig,
    description="multi-view decoupled hyperspherical energy loss (pakoromilas/Multi-View-CL)",
)
