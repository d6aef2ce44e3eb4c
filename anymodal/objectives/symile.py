"""``symile``: contrastive loss on the multilinear inner product (rajesh-lab/symile).

``MIP(v_1..v_M) = Σ_d Π_m v_m[d]``. Each modality in turn is the anchor a; row i's logits
range over candidate tuples of the other modalities, its positive is its own tuple, and
``L = (1/M) Σ_a CE(s·logits_a, positive)``.

- ``negatives="n_squared"``: the candidates are all ``N^(M-1)`` tuples. The normaliser
  (a log-sum-exp over them) comes from :func:`anymodal.kernels.mip_logsumexp`, which never
  materialises the ``N^M`` tensor. Across processes: local anchor rows against the tuples
  of the gathered batch.
- ``negatives="n"`` (the paper's O(N) variant): N candidates per row, the positive tuple on
  the diagonal and, off it, tuples whose non-anchor rows are permuted by an independent
  ``torch.randperm`` per (anchor, non-anchor modality), drawn from the objective's own
  generator (seeded by ``seed``, in modality order). The permutations apply to the global
  batch and are the same in every process, since every process draws them alike.

Rows with hidden modalities (``present``; subset-consistent training) are grouped by the
modalities they have (:mod:`anymodal.objectives.groups`): such a row is contrasted with the
tuples of its present members taken from every row that has them, and its hidden members
(the model's learned missing embeddings) weigh the positive and every candidate alike, as
:meth:`SymileLoss.score` weighs a query that lacks them. (Mixing them with complete tuples
instead let the loss pick the positive out by its missing embedding alone; on digits that
cost the all-modality queries 0.3-0.4 of R@1, ``benchmarks/results/subset_training.md``.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.objectives.base import (
    MISSING_CHOICES,
    Objective,
    Rows,
    Shard,
    as_scale,
    check_choice,
    check_query,
    count_tensor,
    query_product,
)
from anymodal.objectives.groups import groups
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "SymileConfig", "SymileLoss"]

NEGATIVES = ("n", "n_squared")


@dataclass
class SymileConfig:
    """Parameters of ``symile``.

    Args:
        negatives: ``"n"`` (N-1 shuffled tuples per row) or ``"n_squared"`` (every tuple).
        missing: ``"embedding"`` uses every row, scored on its present members with the
            learned missing embeddings of the absent ones (the model puts them in their
            place) against candidates of the same shape; ``"drop"`` keeps only the rows
            that have every modality.
        seed: seed of the generator of the ``"n"`` permutations.
    """

    negatives: str = "n"
    missing: str = "embedding"
    seed: int = 0


class SymileLoss(Objective):
    """Symile. See the module docstring.

    Output keys: ``loss``, ``<a>_anchor_loss`` per modality, ``rows``.

    Attributes:
        generator: the CPU generator of the ``"n"`` permutations; replace it (or reseed it)
            to control them. Every process must hold an identically seeded one.
        generator_state: a buffer holding the generator's state after the last call, so
            that the state dict (checkpoints, saved models) carries it and a resumed run
            draws the permutations it would have drawn.
    """

    name = "symile"
    query_rule = "product"
    subset_training_default = True

    def __init__(self, config: SymileConfig | None = None) -> None:
        super().__init__()
        self.config = config or SymileConfig()
        check_choice(self.config.negatives, NEGATIVES, "symile negatives")
        check_choice(self.config.missing, MISSING_CHOICES, "symile missing")
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.generator_state: Tensor
        self.register_buffer("generator_state", self.generator.get_state())

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str,
                              local_metadata: dict[str, Any], strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """Load the buffers, then restore the generator from ``generator_state``.

        A state dict written before the generator was saved has no such key: the generator
        then keeps its seeded state (and no key is reported missing).
        """
        key = prefix + "generator_state"
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        if key in state_dict:
            self.generator.set_state(self.generator_state.detach().cpu())
        elif key in missing_keys:
            missing_keys.remove(key)

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean over (row, anchor) of the anchor terms, and each anchor's term.

        Rows are grouped by the modalities they have (:func:`~anymodal.objectives.groups.
        groups`); a group's rows are contrasted with the tuples of every row that has the
        group's modalities, and their hidden members (the model's missing embeddings)
        weigh the product of the positive and of every candidate alike. Each present
        modality of a group is an anchor in turn. With every row complete there is one
        group and this is Symile as published.
        """
        present = shard.present
        if self.config.missing == "drop":
            complete = shard.complete_rows()
            present = {m: complete for m in shard.names}
        sums: dict[str, list[Tensor]] = {a: [] for a in shard.names}
        counts = dict.fromkeys(shard.names, 0)
        found = groups(present, shard.names[0])
        sizes = [int(group.rows.sum()) for group in found]  # one host sync per group
        for group, size in zip(found, sizes):
            rows = shard.select(group.candidates, group.rows)
            if rows.count < 2:  # one candidate: nothing to contrast
                continue
            for a, loss_sum in self._group_sums(shard, rows, group.have(shard.names)).items():
                sums[a].append(loss_sum)
                counts[a] += size
        total = sum(counts.values())
        parts: dict[str, Tensor] = {
            f"{a}_anchor_loss": shard.share(torch.stack(sums[a]).sum(), counts[a])
            if counts[a] else shard.tie for a in shard.names}
        # Rows that have a tuple (two modalities or more), as the term with one is zero.
        parts["rows"] = count_tensor(sum(sizes), shard.scale)
        every = [x for a in shard.names for x in sums[a]]
        loss = shard.share(torch.stack(every).sum(), total) if total else shard.tie
        if self.config.negatives == "n":
            with torch.no_grad():
                self.generator_state.copy_(self.generator.get_state())
        return loss, parts

    def _group_sums(self, shard: Shard, rows: Rows, have: list[str]) -> dict[str, Tensor]:
        """Summed ``CE(s·logits_a, positive)`` of this process's rows of one group.

        Returns one sum per anchor ``a`` in ``have`` (the group's modalities).
        """
        hidden = [m for m in shard.names if m not in have]
        weight: Tensor | None = None  # the product of the rows' missing embeddings
        for m in hidden:
            weight = rows.mine(shard.local[m]) if weight is None else \
                weight * rows.mine(shard.local[m])
        normalisers: list[Tensor] | None = None
        if (self.config.negatives == "n_squared" and not hidden
                and shard.world < len(have) and rows.local.numel()):
            from anymodal.kernels import mip_logsumexp_all

            # One traversal of the N^M tensor gives every anchor's normaliser (1/M of the
            # work of one call per anchor; with W processes each walks the global tensor).
            normalisers = mip_logsumexp_all([rows.every(shard.full[m]) for m in have],
                                            shard.scale)
        out = {}
        for a in have:
            anchor = rows.mine(shard.local[a])  # [n_v, D]
            if weight is not None:
                anchor = anchor * weight
            others = [m for m in have if m != a]
            positive = anchor
            for m in others:
                positive = positive * rows.mine(shard.local[m])
            positive = shard.scale * positive.sum(-1)  # [n_v]
            candidates = [rows.every(shard.full[m]) for m in others]  # each [count, D]
            if self.config.negatives == "n":
                out[a] = self._shuffled_sum(shard, rows, anchor, positive, candidates)
            elif not rows.local.numel():  # this process holds none of the group's rows
                out[a] = shard.tie
            else:
                if normalisers is not None:
                    normaliser = normalisers[have.index(a)][rows.targets]
                else:
                    from anymodal.kernels import mip_logsumexp

                    normaliser = mip_logsumexp(anchor, candidates, shard.scale)  # [n_v]
                out[a] = (normaliser - positive).sum()
        return out

    def _shuffled_sum(self, shard: Shard, rows: Rows, anchor: Tensor, positive: Tensor,
                      candidates: list[Tensor]) -> Tensor:
        """The summed CE over the ``"n"`` negatives of one anchor.

        Each candidate modality is permuted on its own and the positive put on the
        diagonal. The permutations are drawn in every process, rows or not.
        """
        shuffled = torch.ones_like(candidates[0])
        for tensor in candidates:
            perm = torch.randperm(rows.count, generator=self.generator)
            shuffled = shuffled * tensor[perm.to(tensor.device)]
        logits = shard.scale * (anchor @ shuffled.T)  # [n_v, count]
        # The positive tuple replaces the shuffled one on the diagonal (in place).
        logits[torch.arange(len(rows.local), device=logits.device), rows.targets] = positive
        return F.cross_entropy(logits, rows.targets, reduction="sum")

    def score(
        self, query: Mapping[str, Tensor], candidates: Tensor, logit_scale: Tensor | float,
        missing: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """``s · ⟨Π_q q · Π_a miss_a, c⟩``, the MIP of query, missing and candidate.

        The product runs over the query modalities, the learned missing embeddings of the
        absent modalities and each candidate.

        A row that lacked a modality in training had the model's missing embedding in its
        place, so a query lacking it is scored the same way (a one-modality query of a
        three-modality model is ``MIP(q, miss, c)``, never the untrained ``⟨q, c⟩``).

        Args:
            query: ``{m: [Q, D]}``.
            candidates: ``[C, D]``.
            logit_scale: the multiplier ``s``.
            missing: the missing embeddings of the modalities in neither the query nor the
                candidates (``MultiModalModel.score`` passes them); ``None``: none absent.

        Shapes:
            query: ``{m: [Q, D]}``; candidates: ``[C, D]``; missing: ``{m: [D]}``;
            returns ``[Q, C]``.
        """
        check_query(query, candidates)
        if missing and self.config.missing == "drop":
            raise ConfigError(
                f"symile was trained with missing='drop' (complete rows only), so a query "
                f"without {sorted(missing)} has no trained score; train with "
                "missing='embedding' and modality dropout to answer subset queries")
        product = query_product(query, missing)
        return as_scale(logit_scale, candidates) * (product @ candidates.T)


SPEC = ObjectiveSpec(
    name="symile",
    factory=SymileLoss,
    config_cls=SymileConfig,
    description="contrastive loss on the multilinear inner product (rajesh-lab/symile)",
)
