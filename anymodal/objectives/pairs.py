"""Options of the pairwise objectives: per-pair temperatures and weights, hard negatives.

- **Per-pair scales** (``pair_scales="image:text=20,audio:text=10"``): the listed pairs use
  their own multiplier instead of the model's shared logit scale; fixed, or learned from
  that initial value (``learn_pair_scales``; stored as a log, like the model's scale).
  Retrieval ranks by the summed similarities (the ``"sum"`` rule), which for a
  one-modality query orders candidates as the pair's scaled similarity does.
- **Per-pair weights** (``pair_weights="image:audio=1,image:text=0.5"``): each pair's loss
  counts with its weight in the objective's (weighted) mean or sum; unlisted pairs weigh 1.
- **Hard negatives** on a row of logits ``ℓ_ij = s·a_i·b_j`` (positive at ``t``):
  HCL's β (Robinson et al. 2021) reweights each negative by its importance weight
  ``e^{β ℓ_ij} / mean_{k≠t} e^{β ℓ_ik}`` (so β = 0 is plain InfoNCE), i.e. adds
  ``β ℓ_ij - LSE_{k≠t}(β ℓ_ik) + log(n - 1)`` to each negative logit; LLaVE's α adds
  ``α · sg(a_i·b_j)`` to each negative logit (a hardness boost that carries no gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anymodal.errors import ConfigError
from anymodal.objectives.base import check_choice

__all__ = ["REDUCTIONS", "PairScales", "PairSelection", "PairWeights", "hard_negative_logits",
           "parse_pair_scales", "parse_pair_weights"]

#: How a pairwise objective combines its pairs' losses.
REDUCTIONS = ("mean", "sum")


@dataclass
class PairSelection:
    """Which pairs a pairwise objective trains, and how their losses combine.

    The base of every pairwise objective's parameters (``clip``, ``siglip``, ``dcl``,
    ``infoloob``), so the three options mean the same everywhere.

    Args:
        pairs: ``"all"`` (every unordered pair of modalities) or ``"a:b,c:d"``.
        anchor: when set, the pairs are (anchor, every other modality); excludes ``pairs``.
        reduction: ``"mean"`` over the pairs that have at least two rows, or ``"sum"``
            (the Symile paper's pairwise baseline sums its three pairs).
    """

    pairs: str = "all"
    anchor: str | None = None
    reduction: str = "mean"

    def __post_init__(self) -> None:
        check_choice(self.reduction, REDUCTIONS, "reduction")


def _pair_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def _parse_pair_values(spec: str, objective: str, option: str, what: str, example: str,
                       refuse_repeats: bool) -> dict[str, float]:
    """``"a:b=x,c:d=y"`` -> ``{"a|b": x, "c|d": y}``: each value a positive finite number.

    Args:
        spec: the option's text.
        objective: the objective's name, for the error.
        option: the option's name (``pair_scales``), for the error.
        what: what a value is (``scale``), for the error.
        example: an example item, for the error.
        refuse_repeats: a pair listed twice is an error (else the last value counts).
    """
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        pair, _, text = item.partition("=")
        a, sep, b = pair.strip().partition(":")
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not sep or not a or not b or a == b or value <= 0 or not math.isfinite(value):
            raise ConfigError(f"objective {objective!r}: bad {option} item {item!r}; "
                              f"expected 'a:b=<{what} > 0>' (e.g. '{example}')")
        key = _pair_key(a.strip(), b.strip())
        if refuse_repeats and key in out:
            raise ConfigError(f"objective {objective!r}: {option} lists {a}:{b} twice")
        out[key] = value
    return out


def parse_pair_scales(spec: str, objective: str) -> dict[str, float]:
    """``"a:b=20,c:d=10"`` -> ``{"a|b": 20.0, "c|d": 10.0}`` (unordered pairs).

    Raises:
        ConfigError: an item is not ``a:b=<positive number>``.
    """
    return _parse_pair_values(spec, objective, "pair_scales", "scale", "image:text=20",
                              refuse_repeats=False)


def parse_pair_weights(spec: str, objective: str) -> dict[str, float]:
    """``"image:audio=1,image:text=0.5"`` -> ``{"audio|image": 1.0, "image|text": 0.5}``.

    Raises:
        ConfigError: an item is not ``a:b=<weight > 0>``, or a pair is listed twice.
    """
    return _parse_pair_values(spec, objective, "pair_weights", "weight", "image:text=0.5",
                              refuse_repeats=True)


class PairWeights:
    """The loss weight of each modality pair: its own where listed, else 1.

    With ``reduction="mean"`` the objective is ``Σ w_ab L_ab / Σ w_ab`` over the pairs that
    have at least two rows in the batch; with ``"sum"`` it is ``Σ w_ab L_ab``. A weight
    rebalances pairs whose data set is larger or easier (ImageBind trains each pair of a
    mixture with its own share) without touching their temperatures.

    Args:
        spec: ``pair_weights`` (see :func:`parse_pair_weights`).
        objective: the objective's name, for messages.
    """

    def __init__(self, spec: str, objective: str) -> None:
        self.values = parse_pair_weights(spec, objective)

    def check(self, names: list[str], objective: str) -> None:
        """Refuse a listed pair naming a modality the batch does not have.

        Args:
            names: the batch's modality keys.
            objective: the objective's name, for messages.
        """
        for key in self.values:
            missing = [m for m in key.split("|") if m not in names]
            if missing:
                raise ConfigError(f"objective {objective!r}: pair_weights names {missing}, "
                                  f"not modalities of the model ({', '.join(names)})")

    def weight(self, a: str, b: str) -> float:
        """The weight of pair (a, b)."""
        return self.values.get(_pair_key(a, b), 1.0)


class PairScales(nn.Module):
    """The multiplier of each modality pair: its own where listed, else the shared one.

    Args:
        spec: ``pair_scales`` (see :func:`parse_pair_scales`).
        learn: learn the listed scales (as logs) instead of keeping them fixed.
        objective: the objective's name, for messages.
    """

    def __init__(self, spec: str, learn: bool, objective: str) -> None:
        super().__init__()
        values = parse_pair_scales(spec, objective)
        self.learned = nn.ParameterDict()
        self.fixed: dict[str, float] = {}
        for key, value in values.items():
            if learn:
                self.learned[key] = nn.Parameter(torch.tensor(math.log(value)))
            else:
                self.fixed[key] = value

    def scale(self, shared: Tensor, a: str, b: str) -> Tensor:
        """The multiplier of pair (a, b): a 0-d tensor of ``shared``'s dtype."""
        key = _pair_key(a, b)
        if key in self.learned:
            return self.learned[key].exp().to(shared.dtype)
        if key in self.fixed:
            return torch.tensor(self.fixed[key], dtype=shared.dtype, device=shared.device)
        return shared


def hard_negative_logits(logits: Tensor, targets: Tensor, similarity: Tensor, beta: float,
                         alpha: float) -> Tensor:
    """The logits with HCL's β weights and LLaVE's α boost applied to the negatives.

    Args:
        logits: ``s · a bᵀ`` for this process's rows against every candidate.
        targets: the column of each row's positive.
        similarity: the plain similarities ``a bᵀ`` (LLaVE's boost uses them, detached).
        beta: HCL's concentration (0: off).
        alpha: LLaVE's boost (0: off).

    Shapes:
        logits, similarity: ``[n, C]``; targets: ``[n]``; returns ``[n, C]``.
    """
    if beta == 0 and alpha == 0:
        return logits
    rows = torch.arange(logits.shape[0], device=logits.device)
    negative = torch.ones_like(logits, dtype=torch.bool)
    negative[rows, targets] = False
    shift = torch.zeros_like(logits)
    if beta != 0 and logits.shape[1] > 1:
        weighted = (beta * logits).masked_fill(~negative, float("-inf"))
        log_mean = weighted.logsumexp(dim=-1, keepdim=True) - math.log(logits.shape[1] - 1)
        shift = shift + beta * logits - log_mean
    if alpha != 0:
        shift = shift + alpha * similarity.detach()
    return logits + shift.masked_fill(~negative, 0.0)
