"""Retrieval and representation metrics: pure functions of score matrices and embeddings.

Every ranking metric reads a score matrix ``scores[q, c]`` (higher is better) and a boolean
matrix ``positives[q, c]`` (candidate ``c`` is a correct answer to query ``q``; a query may
have several). Nothing here embeds, loads or prints.

**Ties are pessimistic.** A candidate that scores exactly as well as a positive is ranked
ahead of it when it is a negative (so a constant scorer earns the worst rank, never a lucky
one), and positives tied with each other are interchangeable. Concretely, with a query's
positive scores sorted best first ``p_1 >= p_2 >= ... >= p_P``, the ``i``-th positive sits at
rank ``i + #{negatives scoring >= p_i}`` (1-based). Hence:

* rank of a query: the rank of its best positive, ``1 + #{negatives scoring >= p_1}``;
* ``recall@k``: the fraction of queries with at least one positive in the top ``k`` (the
  usual "R@k" of cross-modal retrieval); a ``k`` larger than the number of candidates is
  allowed and means "anywhere";
* ``MRR``: the mean of ``1 / rank``;
* ``mAP``: the mean over queries of ``AP = (1/P) sum_i i / rank_i``.

A query with no positive has no rank: the functions raise ``ValueError`` rather than
silently counting it as a miss or a hit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = [
    "alignment",
    "average_precision",
    "first_positive_rank",
    "mean_average_precision",
    "median_rank",
    "mrr",
    "neighbour_recall",
    "positive_ranks",
    "positives_from_labels",
    "recall_at_k",
    "retrieval_metrics",
    "summarize",
    "uniformity",
    "zero_shot_accuracy",
]


def _check(scores: Tensor, positives: Tensor) -> tuple[Tensor, Tensor]:
    if scores.dim() != 2:
        raise ValueError(f"scores must be [Q, C], got shape {tuple(scores.shape)}")
    if positives.shape != scores.shape:
        raise ValueError(
            f"positives {tuple(positives.shape)} must have the shape of scores "
            f"{tuple(scores.shape)}"
        )
    positives = positives.to(device=scores.device, dtype=torch.bool)
    empty = ~positives.any(dim=1)
    if bool(empty.any()):
        rows = empty.nonzero().squeeze(1)[:5].tolist()
        raise ValueError(f"queries {rows} have no positive candidate; leave them out")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores contain NaN or infinite values")
    return scores.double(), positives


def positive_ranks(scores: Tensor, positives: Tensor) -> tuple[Tensor, Tensor]:
    """The pessimistic 1-based rank of every positive, best positive first.

    Returns:
        ``(ranks, valid)``: ``ranks[q, i]`` is the rank of query ``q``'s ``i``-th best
        positive (``i + #{negatives scoring >= it}``); ``valid[q, i]`` is False past the
        query's number of positives (those entries are 0).

    Shapes:
        scores, positives: ``[Q, C]``; returns two ``[Q, P_max]`` tensors.
    """
    scores, positives = _check(scores, positives)
    n_pos = positives.sum(dim=1)
    p_max = int(n_pos.max())
    # Positive scores best first; padding (-inf) sorts last and is masked out by ``valid``.
    pos_scores = scores.masked_fill(~positives, float("-inf"))
    pos_sorted = pos_scores.topk(p_max, dim=1).values  # [Q, P_max]
    # Negatives sorted ascending: #{neg >= s} = n_neg - #{neg < s} = n_neg - searchsorted(s).
    neg_scores = scores.masked_fill(positives, float("-inf")).sort(dim=1).values
    n_pos_per_row = n_pos.unsqueeze(1)
    below = torch.searchsorted(neg_scores, pos_sorted.contiguous(), right=False)
    # The -inf fill of the positives' slots sits at the start of neg_scores: not negatives.
    n_neg_below = below - n_pos_per_row
    n_neg = scores.shape[1] - n_pos_per_row
    negatives_ahead = (n_neg - n_neg_below).clamp(min=0)
    order = torch.arange(1, p_max + 1, device=scores.device).unsqueeze(0)
    valid = order <= n_pos_per_row
    ranks = torch.where(valid, order + negatives_ahead, torch.zeros_like(negatives_ahead))
    return ranks, valid


def first_positive_rank(scores: Tensor, positives: Tensor) -> Tensor:
    """The pessimistic 1-based rank of each query's best positive.

    Shapes:
        scores, positives: ``[Q, C]``; returns ``LongTensor[Q]``.
    """
    scores, positives = _check(scores, positives)
    best = scores.masked_fill(~positives, float("-inf")).max(dim=1, keepdim=True).values
    return 1 + ((scores >= best) & ~positives).sum(dim=1)


def recall_at_k(scores: Tensor, positives: Tensor, ks: Iterable[int] = (1, 5, 10)
                ) -> dict[int, float]:
    """Fraction of queries with a positive among the top ``k``, for each ``k`` (>= 1)."""
    ranks = first_positive_rank(scores, positives)
    out: dict[int, float] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out[int(k)] = float((ranks <= k).double().mean())
    return out


def median_rank(scores: Tensor, positives: Tensor) -> float:
    """The median (the mean of the two middle values for an even count) of the ranks."""
    ranks = first_positive_rank(scores, positives).double()
    return float(ranks.quantile(0.5))


def mrr(scores: Tensor, positives: Tensor) -> float:
    """Mean reciprocal rank of each query's best positive."""
    return float((1.0 / first_positive_rank(scores, positives).double()).mean())


def average_precision(scores: Tensor, positives: Tensor) -> Tensor:
    """Average precision of each query over all of its positives.

    Shapes:
        scores, positives: ``[Q, C]``; returns ``DoubleTensor[Q]``.
    """
    ranks, valid = positive_ranks(scores, positives)
    order = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=torch.double)
    precision = torch.where(valid, order / ranks.clamp(min=1).double(), 0.0)
    return precision.sum(dim=1) / valid.sum(dim=1).double()


def mean_average_precision(scores: Tensor, positives: Tensor) -> float:
    """mAP: the mean of :func:`average_precision` over queries."""
    return float(average_precision(scores, positives).mean())


def retrieval_metrics(scores: Tensor, positives: Tensor, ks: Sequence[int] = (1, 5, 10)
                      ) -> dict[str, float]:
    """``R@k`` for each k, ``median_rank``, ``MRR``, ``mAP`` and the sizes, in one dict."""
    out = summarize(first_positive_rank(scores, positives),
                    average_precision(scores, positives), ks)
    out["candidates"] = float(scores.shape[1])
    return out


def summarize(ranks: Tensor, precisions: Tensor, ks: Sequence[int] = (1, 5, 10)
              ) -> dict[str, float]:
    """The metrics of :func:`retrieval_metrics` from per-query values.

    A large evaluation can so score its queries in blocks.

    Args:
        ranks: each query's :func:`first_positive_rank`.
        precisions: each query's :func:`average_precision`.
        ks: the k of each recall@k.

    Shapes:
        ranks, precisions: ``[Q]``.
    """
    r = ranks.double()
    out = {f"R@{k}": float((r <= k).double().mean()) for k in ks}
    out["median_rank"] = float(r.quantile(0.5))
    out["MRR"] = float((1.0 / r).mean())
    out["mAP"] = float(precisions.double().mean())
    out["queries"] = float(r.numel())
    return out


def positives_from_labels(query_labels: Tensor, candidate_labels: Tensor) -> Tensor:
    """``positives[q, c] = query_labels[q] == candidate_labels[c]``.

    Shapes:
        query_labels ``[Q]``, candidate_labels ``[C]``; returns ``BoolTensor[Q, C]``.
    """
    return query_labels.reshape(-1, 1) == candidate_labels.reshape(1, -1)


def zero_shot_accuracy(scores: Tensor, labels: Tensor, ks: Iterable[int] = (1, 5)
                       ) -> dict[int, float]:
    """Top-k accuracy of classifying each row into the class with the best score.

    A row is right at ``k`` when fewer than ``k`` other classes score at least as well as
    its true class (ties pessimistic); ``k`` above the number of classes counts every row.

    Shapes:
        scores: ``[N, K]`` (row against each class); labels: ``LongTensor[N]`` in ``[0, K)``.
    """
    if scores.dim() != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [N, K] and labels [N]; got {tuple(scores.shape)} "
                         f"and {tuple(labels.shape)}")
    labels = labels.to(scores.device).long()
    if bool(((labels < 0) | (labels >= scores.shape[1])).any()):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]})")
    positives = torch.nn.functional.one_hot(labels, scores.shape[1]).bool()
    return recall_at_k(scores, positives, ks)


def alignment(x: Tensor, y: Tensor, alpha: float = 2.0) -> float:
    """Wang & Isola's alignment: ``E ||x_i - y_i||^alpha`` over matched rows (lower is better).

    Shapes:
        x, y: ``[N, D]`` (L2-normalised), row ``i`` of each is a matched pair.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both be [N, D], got {tuple(x.shape)}, {tuple(y.shape)}")
    return float((x.double() - y.double()).norm(dim=1).pow(alpha).mean())


def uniformity(x: Tensor, t: float = 2.0) -> float:
    """Wang & Isola's uniformity: ``log E_{i<j} exp(-t ||x_i - x_j||^2)`` (lower is better).

    Shapes:
        x: ``[N, D]`` (L2-normalised), ``N >= 2``.
    """
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be [N >= 2, D], got {tuple(x.shape)}")
    x = x.double()
    norms = (x * x).sum(1)
    i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    sq = (norms[i] + norms[j] - 2 * (x[i] * x[j]).sum(1)).clamp(min=0)
    return float(torch.logsumexp(-t * sq, dim=0)) - math.log(sq.numel())



def neighbour_recall(found: Tensor, truth: Tensor) -> float:
    """Recall@k of an approximate search: the overlap of its top-k with the exact top-k.

    ``|found_q ∩ truth_q| / k`` averaged over queries (the "intersection" measure of the
    ANN benchmarks and of ``faiss.IntersectionCriterion``, not the R@1 "is the nearest
    neighbour among the k returned"). A missing result (row -1) counts as a miss.

    Args:
        found: the rows the approximate search returned per query.
        truth: the exact top-k rows per query.

    Shapes:
        found: ``[Q, k']`` int64 (``k' >= k`` allowed, only the first ``k`` count);
        truth: ``[Q, k]`` int64.
    """
    if found.dim() != 2 or truth.dim() != 2 or found.shape[0] != truth.shape[0]:
        raise ValueError(f"found {tuple(found.shape)} and truth {tuple(truth.shape)} must be "
                         "[Q, k] with the same Q")
    k = truth.shape[1]
    if found.shape[1] < k or truth.numel() == 0:
        raise ValueError(f"found has {found.shape[1]} results per query, fewer than k = {k}")
    found = found[:, :k]
    hit = (found[:, :, None] == truth[:, None, :]).any(dim=2) & (found >= 0)
    return float(hit.sum()) / truth.numel()
