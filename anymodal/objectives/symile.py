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
from anymodal.types import ObjectiveSpec

__all__ = ["SPEC", "SymileConfig", "SymileLoss"]

NEGATIVES = ("n", "n_squared")


@dataclass
class SymileConfig:
    """Parameters of ``symile``.

    Args:
        negatives: ``"n"`` (N-1 shuffled tuples per row) or ``"n_squared"`` (every tuple).
        missing: ``"embedding"`` uses every row as given (the model has put its learned
            missing embedding in place of absent modalities); ``"drop"`` keeps only the
            rows that have every modality.
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
        """The mean over anchors of the anchor terms, and each anchor's term."""
        rows = shard.select(shard.rows_for(self.config.missing))
        parts: dict[str, Tensor] = {}
        anchor_losses = []
        for a in shard.names:
            term = self._anchor_term(shard, rows, a) if rows.count >= 2 else shard.tie
            parts[f"{a}_anchor_loss"] = term
            anchor_losses.append(term)
        parts["rows"] = count_tensor(rows.count, shard.scale)
        loss = torch.stack(anchor_losses).mean() if rows.count >= 2 else shard.tie
        if self.config.negatives == "n":
            with torch.no_grad():
                self.generator_state.copy_(self.generator.get_state())
        return loss, parts

    def _anchor_term(self, shard: Shard, rows: Rows, a: str) -> Tensor:
        """This process's share of ``CE(s·logits_a, positive)``."""
        others = [m for m in shard.names if m != a]
        anchor = rows.mine(shard.local[a])  # [n_v, D]
        positive = anchor
        for m in others:
            positive = positive * rows.mine(shard.local[m])
        positive = shard.scale * positive.sum(-1)  # [n_v]
        candidates = [rows.every(shard.full[m]) for m in others]  # each [count, D]
        if self.config.negatives == "n_squared":
            if anchor.shape[0] == 0:  # this process holds none of the term's rows
                return shard.tie
            from anymodal.kernels import mip_logsumexp, mip_logsumexp_all

            if shard.world < len(shard.names):
                # One traversal of the N^M tensor gives every anchor's normaliser (1/M of
                # the work of one call per anchor; with W processes each walks the global
                # tensor, W/M of it): computed for the first anchor, reused by the others.
                cached: tuple[Rows, list[Tensor]] | None = getattr(self, "_normalisers", None)
                if cached is None or cached[0] is not rows:
                    full = [rows.every(shard.full[m]) for m in shard.names]
                    cached = (rows, mip_logsumexp_all(full, shard.scale))
                    self._normalisers: tuple[Rows, list[Tensor]] | None = cached
                normaliser = cached[1][shard.names.index(a)][rows.targets]  # [n_v]
                if a == shard.names[-1]:
                    self._normalisers = None  # the batch's graph is not kept past it
            else:
                normaliser = mip_logsumexp(anchor, candidates, shard.scale)  # [n_v]
            loss_sum = (normaliser - positive).sum()
        else:
            shuffled = torch.ones_like(candidates[0])
            for tensor in candidates:
                perm = torch.randperm(rows.count, generator=self.generator)
                shuffled = shuffled * tensor[perm.to(tensor.device)]
            logits = shard.scale * (anchor @ shuffled.T)  # [n_v, count]
            # The positive tuple replaces the shuffled one on the diagonal (in place).
            logits[torch.arange(len(rows.local), device=logits.device), rows.targets] = positive
            loss_sum = F.cross_entropy(logits, rows.targets, reduction="sum")
        return shard.share(loss_sum, rows.count)

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
