"""What every objective shares: input checks, the gathered batch, row selection, outputs.

Distributed convention (the same in every objective). Process ``r`` of ``W`` holds
``n_r`` rows of a global batch of ``N``. It uses its own rows as anchors (queries) and the
gathered rows of every process as candidates, and writes each term as

    term_r = (W / count) * sum of its rows' losses,

where ``count`` is the number of rows the term uses in the whole batch. The mean of
``term_r`` over processes is then the one-process term, and its gradient with respect to
this process's embeddings (after the all-gather's backward has summed every process's
contribution) is ``W`` times the one-process gradient, so DDP's gradient averaging
gives the one-process gradient of every parameter. The reported *value* of each loss is
replaced by its mean over processes (a detached correction), so every process logs the
one-process number.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from anymodal.errors import ConfigError
from anymodal.objectives.gather import (
    all_gather_no_grad,
    all_gather_with_grad,
    all_reduce_mean,
    gathered_sizes,
    rank,
    world_size,
)

__all__ = [
    "MISSING_CHOICES",
    "QUERY_RULES",
    "Objective",
    "Rows",
    "Shard",
    "as_scale",
    "check_anchor",
    "check_choice",
    "check_query",
    "count_tensor",
    "finish",
    "full_precision",
    "prepare",
    "query_product",
    "resolve_pairs",
    "summed_similarity",
]

MISSING_CHOICES = ("embedding", "drop")


@dataclass
class Rows:
    """The rows one term uses.

    Args:
        local: indices of this process's rows that take part. ``LongTensor[n_v]``.
        targets: the position of each of those rows among the kept global rows, i.e. the
            column of its positive. ``LongTensor[n_v]``.
        keep: which global rows take part. ``BoolTensor[N]``.
        count: how many global rows take part (``keep.sum()``).
    """

    local: Tensor
    targets: Tensor
    keep: Tensor
    count: int

    def mine(self, x: Tensor) -> Tensor:
        """This process's rows of the term, from ``x: [n, D]`` (no copy when all are in)."""
        return x if self.local.numel() == x.shape[0] else x[self.local]

    def every(self, x: Tensor) -> Tensor:
        """The term's rows of the gathered ``x: [N, D]`` (no copy when all are in)."""
        return x if self.count == x.shape[0] else x[self.keep]


@dataclass
class Shard:
    """One process's view of a batch.

    Args:
        names: modality names in the caller's order.
        local: this process's embeddings, ``{m: Tensor[n, D]}``.
        full: the gathered embeddings of every process, ``{m: Tensor[N, D]}`` (``local``
            itself in one process), differentiable.
        present: the gathered presence masks, ``{m: BoolTensor[N]}``.
        offset: the global index of this process's first row.
        world: the number of processes.
        scale: the logit scale as a 0-d tensor of the embeddings' dtype.
        tie: a zero that depends on every input (embeddings, scale, parameters), added to
            the loss so that every input gets a gradient (DDP wants that) and the gather's
            backward runs in every process.
    """

    names: list[str]
    local: dict[str, Tensor]
    full: dict[str, Tensor]
    present: dict[str, Tensor]
    offset: int
    world: int
    scale: Tensor
    tie: Tensor

    @property
    def n_local(self) -> int:
        """Rows this process holds."""
        return self.local[self.names[0]].shape[0]

    @property
    def n_global(self) -> int:
        """Rows of the whole (gathered) batch."""
        return self.full[self.names[0]].shape[0]

    def all_rows(self) -> Tensor:
        """``BoolTensor[N]``, all True."""
        return torch.ones(self.n_global, dtype=torch.bool, device=self.scale.device)

    def complete_rows(self) -> Tensor:
        """``BoolTensor[N]``: the rows that have every modality."""
        keep = self.all_rows()
        for name in self.names:
            keep = keep & self.present[name]
        return keep

    def rows_for(self, missing: str) -> Tensor:
        """The global rows a higher-order term uses under the ``missing`` policy."""
        return self.complete_rows() if missing == "drop" else self.all_rows()

    def select(self, keep: Tensor, anchors: Tensor | None = None) -> Rows:
        """The :class:`Rows` of a term over the global rows where ``keep`` is True.

        ``keep`` selects the candidates; the anchors are this process's rows where
        ``anchors`` is True (``keep`` when None; ``anchors`` must lie within ``keep``).
        """
        position = torch.cumsum(keep.long(), dim=0) - 1
        mine = (keep if anchors is None else anchors)[self.offset : self.offset + self.n_local]
        local = torch.nonzero(mine, as_tuple=False).squeeze(1)
        return Rows(local, position[self.offset + local], keep, int(keep.sum().item()))

    def share(self, loss_sum: Tensor, count: int) -> Tensor:
        """This process's share of a term: ``(W / count) * loss_sum`` (see module doc)."""
        return loss_sum * (self.world / count)


def as_scale(logit_scale: Tensor | float, like: Tensor) -> Tensor:
    """The logit scale as a 0-d tensor with ``like``'s dtype and device (differentiable)."""
    if torch.is_tensor(logit_scale):
        if logit_scale.numel() != 1:
            raise ValueError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}")
        return logit_scale.reshape(()).to(device=like.device, dtype=like.dtype)
    return torch.tensor(float(logit_scale), device=like.device, dtype=like.dtype)


def full_precision(forward: Callable[..., dict[str, Tensor]]) -> Callable[..., dict[str, Tensor]]:
    """Run an objective's ``forward`` with autocast off (see :func:`prepare` for dtypes).

    Log-sum-exps at s = 100 and Gram determinants (which cancel large terms) are wrong in
    half precision, so an objective computes in float32 at least, whatever the caller's
    autocast; gradients flow back to the embeddings in their own dtype.
    """

    @functools.wraps(forward)
    def wrapper(self, embeddings, logit_scale, present=None):  # type: ignore[no-untyped-def]
        first = next(iter(embeddings.values()), None)
        device = first.device.type if torch.is_tensor(first) else "cpu"
        with torch.autocast(device_type=device, enabled=False):
            return forward(self, embeddings, logit_scale, present)

    return wrapper


def _check_embeddings(embeddings: Mapping[str, Tensor]) -> tuple[int, int]:
    if len(embeddings) < 2:
        raise ValueError(
            f"an objective needs at least two modalities, got {list(embeddings)}"
        )
    shapes = {name: tuple(x.shape) for name, x in embeddings.items()}
    first = next(iter(embeddings.values()))
    if any(x.dim() != 2 for x in embeddings.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"embeddings must all be [N, D] with the same N and D, got {shapes}")
    if len({x.dtype for x in embeddings.values()}) != 1:
        raise ValueError("embeddings must all have the same dtype")
    return first.shape[0], first.shape[1]


def _local_present(
    names: list[str], present: Mapping[str, Tensor] | None, n: int, device: torch.device
) -> Tensor:
    """``BoolTensor[n, M]``; a modality absent from ``present`` is present in every row."""
    mask = torch.ones(n, len(names), dtype=torch.bool, device=device)
    for m, name in enumerate(names):
        if present is not None and name in present:
            p = torch.as_tensor(present[name], device=device)
            if p.shape != (n,):
                raise ValueError(f"present[{name!r}] must have shape ({n},), got {tuple(p.shape)}")
            mask[:, m] = p.bool()
    return mask


def prepare(
    module: nn.Module,
    embeddings: Mapping[str, Tensor],
    logit_scale: Tensor | float,
    present: Mapping[str, Tensor] | None,
) -> Shard:
    """Check the inputs and gather them across processes (one collective per kind).

    Half-precision embeddings are cast to float32 (the losses need it, see
    :func:`full_precision`); float32 and float64 are kept.

    Args:
        module: the objective (its parameters join the ``tie``).
        embeddings: ``{m: Tensor[n, D]}``, this process's rows.
        logit_scale: the multiplier ``s`` (1 / temperature).
        present: ``{m: BoolTensor[n]}`` or ``None`` (everything present).
    """
    n, _ = _check_embeddings(embeddings)
    names = list(embeddings)
    if next(iter(embeddings.values())).dtype in (torch.float16, torch.bfloat16):
        embeddings = {name: x.float() for name, x in embeddings.items()}
    first = embeddings[names[0]]
    scale = as_scale(logit_scale, first)
    mask = _local_present(names, present, n, first.device)
    world = world_size()
    if world == 1:
        full = dict(embeddings)
        tie = sum(x.sum() for x in full.values()) * 0.0
        offset = 0
    else:
        # All modalities travel in one differentiable gather, so that there is exactly one
        # collective in the backward pass, in the same order on every process.
        sizes = gathered_sizes(n, first.device)
        stacked = torch.stack([embeddings[m] for m in names], dim=1)  # [n, M, D]
        stacked = all_gather_with_grad(stacked, sizes)
        full = {name: stacked[:, m] for m, name in enumerate(names)}
        tie = stacked.sum() * 0.0
        mask = all_gather_no_grad(mask, sizes)
        offset = sum(sizes[: rank()])
    tie = tie + scale * 0.0
    for param in module.parameters():
        tie = tie + param.sum().to(tie.dtype) * 0.0
    return Shard(
        names=names,
        local=dict(embeddings),
        full=full,
        present={name: mask[:, m] for m, name in enumerate(names)},
        offset=offset,
        world=world,
        scale=scale,
        tie=tie,
    )


def finish(shard: Shard, loss: Tensor, parts: dict[str, Tensor]) -> dict[str, Tensor]:
    """The objective's output dict: ``"loss"`` first, then the named parts.

    Keys ending in ``_loss`` (and ``"loss"``) get the value of their mean over processes
    (their gradient is unchanged); the other parts (row counts) are already global.
    """
    loss_keys = [key for key in parts if key.endswith("_loss")]
    values = torch.stack([loss, *(parts[key] for key in loss_keys)])
    if shard.world > 1:
        values = values + (all_reduce_mean(values) - values.detach())
    out = {"loss": values[0] + shard.tie}
    for i, key in enumerate(loss_keys, start=1):
        out[key] = values[i]
    for key, value in parts.items():
        if key not in out:
            out[key] = value
    return out


def count_tensor(count: int, like: Tensor) -> Tensor:
    """A row count as a float tensor on ``like``'s device (for logging)."""
    return torch.tensor(float(count), device=like.device)


def check_choice(value: str, choices: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``choices``, else a :class:`ConfigError`."""
    if value not in choices:
        raise ConfigError(f"{what} must be one of {list(choices)}, got {value!r}")
    return value


def check_anchor(anchor: str | None, names: Sequence[str], objective: str) -> str:
    """The anchor modality (the first one when ``anchor`` is None)."""
    if anchor is None:
        return names[0]
    if anchor not in names:
        raise ConfigError(
            f"objective {objective!r}: anchor {anchor!r} is not one of the modalities {list(names)}"
        )
    return anchor


def resolve_pairs(
    names: Sequence[str], pairs: str, anchor: str | None, objective: str
) -> list[tuple[str, str]]:
    """The modality pairs of a pairwise objective, in a fixed order.

    Args:
        names: the modalities of the batch, in order.
        pairs: ``"all"`` (every unordered pair) or ``"a:b,c:d"`` (those pairs).
        anchor: when given, the pairs ``(anchor, other)`` for every other modality.
        objective: the objective's name, for messages.
    """
    if anchor is not None:
        if pairs != "all":
            raise ConfigError(f"objective {objective!r}: give either anchor or pairs, not both")
        check_anchor(anchor, names, objective)
        return [(anchor, other) for other in names if other != anchor]
    if pairs == "all":
        return list(combinations(names, 2))
    chosen = []
    for item in pairs.split(","):
        a, sep, b = item.strip().partition(":")
        if not sep or a not in names or b not in names or a == b:
            raise ConfigError(
                f"objective {objective!r}: bad pair {item!r} in pairs={pairs!r}; expected "
                f"'all' or 'a:b,c:d' with two different modalities among {list(names)}"
            )
        chosen.append((a, b))
    return chosen


def check_query(query: Mapping[str, Tensor], candidates: Tensor) -> list[Tensor]:
    """The query embeddings as a list, after checking shapes against the candidates."""
    if not query:
        raise ValueError("score needs at least one query modality")
    tensors = list(query.values())
    q = tensors[0].shape[0]
    for name, x in query.items():
        if x.dim() != 2 or x.shape[0] != q or x.shape[1] != candidates.shape[-1]:
            raise ValueError(
                f"query[{name!r}] has shape {tuple(x.shape)}; expected [{q}, "
                f"{candidates.shape[-1]}] to match candidates {tuple(candidates.shape)}"
            )
    return tensors


def query_product(query: Mapping[str, Tensor],
                  missing: Mapping[str, Tensor] | None = None) -> Tensor:
    """The query vector of the ``"product"`` rule (Symile).

    It is the elementwise product of the query embeddings and of the missing embeddings of
    the absent modalities.

    Shapes:
        query: ``{m: [Q, D]}``; missing: ``{m: [D]}``; returns ``[Q, D]``.
    """
    tensors = list(query.values())
    product = tensors[0]
    for tensor in tensors[1:]:
        product = product * tensor
    for name, vector in (missing or {}).items():
        if vector.shape != product.shape[-1:]:
            raise ValueError(f"missing[{name!r}] has shape {tuple(vector.shape)}; expected "
                             f"({product.shape[-1]},)")
        product = product * vector.to(product.dtype)
    return product


def summed_similarity(query: Mapping[str, Tensor], candidates: Tensor,
                      logit_scale: Tensor | float) -> Tensor:
    """``sum_q s · q cᵀ``, the scoring rule of the pairwise and multi-view objectives.

    Shapes:
        query: ``{m: [Q, D]}``; candidates: ``[C, D]``; returns ``[Q, C]``.
    """
    tensors = check_query(query, candidates)
    scale = as_scale(logit_scale, candidates)
    return scale * (torch.stack(tensors).sum(0) @ candidates.T)


QUERY_RULES = ("sum", "product", "span")


class Objective(nn.Module):
    """The template of every objective: the base class owns :meth:`forward`.

    ``forward(embeddings, logit_scale, present=None)`` turns autocast off, checks and
    gathers the inputs (:func:`prepare`: float32 at least, one differentiable all-gather
    across processes), asks the subclass for its terms (:meth:`terms`) and finishes the
    output dict (:func:`finish`: reported values averaged over processes, the ``tie`` that
    gives every input a gradient). A subclass implements only:

    - :meth:`terms` ``(shard) -> (loss, parts)``: its loss on a :class:`Shard`, written
      with the distributed convention of this module (``shard.share``), and
    - :meth:`score` ``(query, candidates, logit_scale, missing=None) -> Tensor[Q, C]``,

    and declares how retrieval may rank by its score:

    Attributes:
        name: the registry name.
        query_rule: ``"sum"`` / ``"product"``: ``score`` is an increasing function of the
            inner product of the candidate with the sum / elementwise product of the query
            embeddings (times the missing embeddings of the absent modalities, for
            ``"product"``); ``"span"``: a decreasing function of the volume the candidate
            spans with the query embeddings; ``None``: unknown (retrieval re-ranks FAISS
            candidates with ``score``). A subclass that overrides ``score`` without
            declaring ``query_rule`` gets ``None``: its parent's rule may not hold.
        subset_training_default: whether training should hide random modalities per row
            by default (modality dropout), because the objective's subset queries are
            trained only by such rows (Symile, GRAM).
    """

    name: ClassVar[str] = "objective"
    query_rule: ClassVar[str | None] = None
    subset_training_default: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "score" in cls.__dict__ and "query_rule" not in cls.__dict__:
            cls.query_rule = None
        if cls.query_rule is not None and cls.query_rule not in QUERY_RULES:
            raise TypeError(f"{cls.__name__}.query_rule must be one of {QUERY_RULES} or "
                            f"None, got {cls.query_rule!r}")

    def forward(
        self,
        embeddings: Mapping[str, Tensor],
        logit_scale: Tensor | float,
        present: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The loss (``"loss"``) and its named parts, in full precision.

        Args:
            embeddings: ``{m: Tensor[n, D]}`` (L2-normalised), this process's rows; the
                modality order is the dict order. Rows without a modality hold the
                model's learned missing embedding (``MultiModalModel.embed_batch``).
            logit_scale: the multiplier ``s`` (1 / temperature).
            present: ``{m: BoolTensor[n]}``, which rows really have each modality;
                ``None`` (or a modality left out) means every row has it.

        Shapes:
            embeddings: ``{m: [n, D]}``; every output value is a 0-d tensor.
        """
        first = next(iter(embeddings.values()), None)
        device = first.device.type if torch.is_tensor(first) else "cpu"
        # Log-sum-exps at s = 100 and Gram determinants are wrong in half precision.
        with torch.autocast(device_type=device, enabled=False):
            shard = prepare(self, embeddings, logit_scale, present)
            loss, parts = self.terms(shard)
            return finish(shard, loss, parts)

    def terms(self, shard: Shard) -> tuple[Tensor, dict[str, Tensor]]:  # pragma: no cover
        """This process's share of the loss and its named parts (see the module doc)."""
        raise NotImplementedError

    def score(
        self, query: Mapping[str, Tensor], candidates: Tensor, logit_scale: Tensor | float,
        missing: Mapping[str, Tensor] | None = None,
    ) -> Tensor:  # pragma: no cover - abstract
        """Rank ``candidates`` for each query: higher is better.

        Args:
            query: the query embeddings, one or more modalities.
            candidates: the candidate embeddings (one modality).
            logit_scale: the multiplier ``s``.
            missing: the model's learned missing embeddings of the modalities that are in
                neither the query nor the candidates, for objectives whose loss scored
                such rows with them (Symile); the others ignore it.

        Shapes:
            query: ``{m: [Q, D]}``; candidates: ``[C, D]``; missing: ``{m: [D]}``;
            returns ``[Q, C]``.
        """
        raise NotImplementedError


class SummedSimilarityObjective(Objective):
    """An objective whose queries rank by the summed similarity of their modalities.

    The pairwise and multi-view objectives (``clip``, ``dcl``, ``infoloob``, ``mv_infonce``,
    ``mv_dhel``) train each pair of modalities on its own, so a query of several modalities
    is answered by adding each one's similarity to the candidate; absent modalities take no
    part, since their pairs were dropped in training.
    """

    query_rule = "sum"

    def score(
        self, query: Mapping[str, Tensor], candidates: Tensor, logit_scale: Tensor | float,
        missing: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """``sum_q s · q cᵀ``: the summed similarity of each query modality.

        Args:
            query: ``{m: [Q, D]}``.
            candidates: ``[C, D]``.
            logit_scale: the multiplier ``s``.
            missing: ignored (absent modalities take no part).

        Shapes:
            returns ``[Q, C]``.
        """
        return summed_similarity(query, candidates, logit_scale)
