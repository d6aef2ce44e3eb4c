"""``global_contrastive``: SogCLR / FastCLIP's global contrastive loss over pairs of modalities.

Yuan et al. 2022 (SogCLR, "Provable stochastic optimization for global contrastive
learning: small batch does not harm performance"); Wei et al. 2024 (FastCLIP). A row's
InfoNCE denominator is a mean over *every* negative of the data set; a batch estimates it
with a handful, which is why CLIP needs large batches. SogCLR keeps, for each training row
``i`` and each direction ``a -> b``, a moving average ``u_i`` of the batch estimate

``g_i = mean_{j != i} exp(s·(a_i·b_j - a_i·b_i))``   (over the pair's rows of the batch)
``u_i <- (1 - γ) u_i + γ g_i``                       (``u_i = g_i`` the first time ``i`` is seen)

and follows the gradient of ``log g_i`` with ``g_i`` in the denominator replaced by ``u_i``:
``∇g_i / u_i``. So small batches estimate the gradient of the global objective
``mean_i log E_j exp(s·(a_i·b_j - a_i·b_i))``, averaged over both directions of each pair and
over pairs (mean or sum), rows missing a modality taking no part in that pair (as ``clip``).

The loss is written so that autograd gives exactly that gradient: per row, the surrogate
``mean_{j != i} sg(w_ij) · s·(a_i·b_j - a_i·b_i)`` with ``w_ij = exp(s·(a_i·b_j - a_i·b_i)) / u_i``
(``sg``: no gradient); its reported *value* is ``mean_i log u_i``, the running estimate of
the global objective. ``s`` is the model's logit scale, used as SogCLR's fixed ``1/τ``: this
loss gives it no gradient (set ``model.logit_scale_init``; FastCLIP's learned temperature is
not implemented). In evaluation mode (validation) no state is read or written and
``u_i = g_i``: the value is the batch's own ``mean_i log g_i``.

``u`` is kept as ``log u`` in float64 (the exponentials overflow at s = 100 otherwise), one
entry per (training row, direction) in a :class:`~anymodal.objectives.row_state.RowDenominators`
that the training loop sizes from the training set (:meth:`GlobalContrastiveLoss.bind_rows`)
and saves in every checkpoint. Across processes every process updates the whole table with
the gathered new values, so all hold the same state.

Compared with LibAUC's ``GCLoss(mode="bimodal")`` (libauc 2.0.1, ``GCLoss_v2``): the same
``u`` (LibAUC stores it scaled by ``e^{-b}``, ``b`` a running maximum, where this keeps its
log), the same rate convention (``γ`` weighs the new estimate), but LibAUC's loss is
``(B - 1)/s`` times this one's (it sums the weighted negatives instead of averaging them, on
unscaled similarities), and it decides ``γ = 1`` for a whole batch when all its rows are
unseen and until ``adjust_gamma`` is called, where this takes ``γ = 1`` per unseen row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from anymodal.errors import ConfigError, DataError
from anymodal.objectives.base import (
    Rows,
    Shard,
    SummedSimilarityObjective,
    count_tensor,
    resolve_pairs,
)
from anymodal.objectives.clip import combine_pairs
from anymodal.objectives.gather import all_gather_no_grad
from anymodal.objectives.pairs import PairSelection
from anymodal.objectives.row_state import RowDenominators, direction_name
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "GlobalContrastiveConfig", "GlobalContrastiveLoss", "update_log_u"]


@dataclass
class GlobalContrastiveConfig(PairSelection):
    """Parameters of ``global_contrastive``.

    Args:
        gamma: the moving average's rate, in (0, 1]: the weight of the batch's estimate
            (1: no memory, the batch's own denominator; SogCLR's and LibAUC's default 0.9).
    """

    gamma: float = 0.9


def update_log_u(old: Tensor, log_g: Tensor, gamma: float) -> Tensor:
    """``log((1 - γ) u + γ g)``, or ``log g`` where the row was not seen (``old = -inf``).

    Shapes:
        old, log_g: ``[n]`` (float64); returns ``[n]``.
    """
    if gamma >= 1.0:
        return log_g
    mixed = torch.logaddexp(old + math.log1p(-gamma), log_g + math.log(gamma))
    return torch.where(torch.isneginf(old), log_g, mixed)


class GlobalContrastiveLoss(SummedSimilarityObjective):
    """SogCLR's global contrastive loss over pairs. See the module docstring.

    Output keys: ``loss``; per pair ``<a>_<b>_loss``, ``<a>_to_<b>_loss``,
    ``<b>_to_<a>_loss`` and ``<a>_<b>_rows``; ``seen_fraction`` (of the table) in training.
    """

    name = "global_contrastive"

    def __init__(self, config: GlobalContrastiveConfig | None = None) -> None:
        super().__init__()
        self.config = config or GlobalContrastiveConfig()
        if not 0.0 < self.config.gamma <= 1.0:
            raise ConfigError(f"global_contrastive gamma must be in (0, 1], got "
                              f"{self.config.gamma}")
        self.state: RowDenominators | None = None
        self._rows: Tensor | None = None  # this batch's row indices (use_rows)
        self._new: dict[int, Tensor] = {}  # column -> this process's new log u

    def bind_rows(self, rows: int | None, modalities: Sequence[str]) -> RowDenominators:
        """Size the per-row state from the training set; the training loop calls this.

        Args:
            rows: rows of the training set; ``None`` for a stream (no row indices).
            modalities: the model's modality keys.

        Returns:
            the state (register it for checkpointing).

        Raises:
            ConfigError: a training set without row indices.
        """
        if rows is None:
            raise ConfigError(
                "objective 'global_contrastive' keeps a moving average per training row and "
                "needs each row's index, which a streamed training set (data.train.kind: "
                "webdataset) does not have; train from a manifest or synthetic set")
        pairs = resolve_pairs(list(modalities), self.config.pairs, self.config.anchor,
                              self.name)
        directions = [direction_name(x, y) for a, b in pairs for x, y in ((a, b), (b, a))]
        self.state = RowDenominators(rows, directions)
        return self.state

    def use_rows(self, rows: Tensor | None) -> None:
        """The training-set index of each row of the next batch (``None`` to clear)."""
        self._rows = rows

    def forward(self, embeddings: Mapping[str, Tensor], logit_scale: Tensor | float,
                present: Mapping[str, Tensor] | None = None, rows: Tensor | None = None
                ) -> dict[str, Tensor]:
        """As :meth:`Objective.forward`, plus each row's training-set index.

        Args:
            embeddings: ``{m: Tensor[n, D]}``, this process's rows.
            logit_scale: the multiplier ``s`` (SogCLR's ``1/τ``; receives no gradient).
            present: ``{m: BoolTensor[n]}`` or ``None``.
            rows: ``LongTensor[n]``, the rows' indices in the training set; defaults to
                those given by :meth:`use_rows`. Required in training mode.

        Shapes:
            every output value is a 0-d tensor.
        """
        if rows is not None:
            self._rows = rows
        try:
            return super().forward(embeddings, logit_scale, present)
        finally:
            if rows is not None:
                self._rows = None
            self._new = {}

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean (or sum) of the pair losses; updates the state in training mode."""
        index = self._local_index(shard) if self.training else None
        pairs = resolve_pairs(shard.names, self.config.pairs, self.config.anchor, self.name)
        parts: dict[str, Tensor] = {}
        used: list[Tensor] = []
        for a, b in pairs:
            rows = shard.select(shard.present[a] & shard.present[b])
            a_to_b = b_to_a = shard.tie
            if rows.count >= 2:
                a_to_b = self._direction(shard, rows, a, b, index)
                b_to_a = self._direction(shard, rows, b, a, index)
                used.append((a_to_b + b_to_a) / 2)
            parts.update({f"{a}_{b}_loss": (a_to_b + b_to_a) / 2, f"{a}_to_{b}_loss": a_to_b,
                          f"{b}_to_{a}_loss": b_to_a,
                          f"{a}_{b}_rows": count_tensor(rows.count, shard.scale)})
        if index is not None:
            self._store(shard, index)
            assert self.state is not None
            parts["seen_fraction"] = torch.tensor(self.state.seen_fraction(),
                                                  device=shard.scale.device)
        return combine_pairs(used, self.config.reduction, shard.tie), parts

    def _local_index(self, shard: Shard) -> Tensor:
        """This process's row indices, checked against the state."""
        if self.state is None:
            raise ConfigError("objective 'global_contrastive' has no per-row state: call "
                              "bind_rows(training rows, modalities) before training (the "
                              "training loop does)")
        if self._rows is None:
            raise DataError("batch['rows']", "is missing: objective 'global_contrastive' "
                            "needs each training row's index (rows read through the "
                            "training loader carry it; pass rows=... when calling it)")
        self.state.to(shard.scale.device)
        return self.state.check(torch.as_tensor(self._rows, device=shard.scale.device),
                                shard.n_local)

    def _direction(self, shard: Shard, rows: Rows, a: str, b: str, index: Tensor | None
                   ) -> Tensor:
        """This process's share of direction a -> b.

        Its value is ``mean_i log u_i``; its gradient is the surrogate's,
        ``mean_i mean_{j≠i} sg(w_ij) z_ij``.
        """
        queries = rows.mine(shard.local[a])  # [n_v, D]
        sim = queries @ rows.every(shard.full[b]).T  # [n_v, count]
        local = torch.arange(sim.shape[0], device=sim.device)
        # SogCLR's τ is fixed: the scale is a constant here (see the module doc).
        z = shard.scale.detach() * (sim - sim[local, rows.targets].unsqueeze(1))
        negative = torch.ones_like(z, dtype=torch.bool)
        negative[local, rows.targets] = False
        negatives = rows.count - 1
        with torch.no_grad():
            log_g = (z.masked_fill(~negative, float("-inf")).logsumexp(dim=1).double()
                     - math.log(negatives))
            log_u = log_g
            if index is not None:
                assert self.state is not None
                column = self.state.column(a, b)
                old = self.state.read(index[rows.local], column)
                log_u = update_log_u(old, log_g, self.config.gamma)
                self._remember(shard, rows, column, log_u)
            weights = torch.exp(z.double() - log_u.unsqueeze(1)).to(z.dtype)
            weights = weights.masked_fill(~negative, 0.0)
        surrogate = (weights * z).sum() / negatives
        value = log_u.sum().to(z.dtype)
        return shard.share(value + surrogate - surrogate.detach(), rows.count)

    def _remember(self, shard: Shard, rows: Rows, column: int, log_u: Tensor) -> None:
        """Keep the new ``log u`` of this process's rows until the whole step is computed."""
        new = torch.full((shard.n_local,), float("nan"), dtype=torch.float64,
                         device=log_u.device)
        new[rows.local] = log_u
        self._new[column] = new

    def _store(self, shard: Shard, index: Tensor) -> None:
        """Write every process's new values into the (identical) tables: one collective."""
        assert self.state is not None
        columns = len(self.state.directions)
        table = torch.full((shard.n_local, 1 + columns), float("nan"), dtype=torch.float64,
                           device=index.device)
        table[:, 0] = index.double()  # exact: row indices are far below 2**53
        for column, values in self._new.items():
            table[:, 1 + column] = values
        table = all_gather_no_grad(table)
        self.state.write(table[:, 0].long(), table[:, 1:])
        self._new = {}


SPEC = ObjectiveSpec(
    name="global_contrastive",
    factory=GlobalContrastiveLoss,
    config_cls=GlobalContrastiveConfig,
    description="global contrastive loss with a per-row moving-average denominator, for "
                "small batches (SogCLR / FastCLIP)",
)
