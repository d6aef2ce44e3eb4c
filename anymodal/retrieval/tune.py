"""Tune an approximate index to a recall target on held-out queries.

``Index.tune(queries, target_recall=0.95)`` answers the queries exactly once (the truth),
then sweeps the backend's search-time settings — ``nprobe`` for IVF, ``efSearch`` for
HNSW, ``nprobe`` x ``refine`` for IVF-PQ — from cheap to costly, measuring for each the
recall@k (overlap with the exact top-k, :func:`~anymodal.retrieval.metrics.neighbour_recall`)
and the time of one batch search. The values swept are FAISS's own
(``faiss.ParameterSpace``: powers of two up to the index's limits) and the points are kept
on FAISS's Pareto front (``faiss.OperatingPoints``); the fastest point at or above the
target is chosen, stored in the index's options (saved with it) and returned.

A sweep along one setting stops as soon as it reaches the target (recall only grows with
``nprobe``/``efSearch`` while time grows too), or when a batch runs slower than the exact
search (nothing is won past that point). When no point reaches the target the most
accurate one is kept and the result says ``reached=False`` (with a warning): a target is
never claimed that was not measured.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.retrieval.backends import SEARCH_PARAMETERS, import_faiss
from anymodal.retrieval.metrics import neighbour_recall

if TYPE_CHECKING:
    from anymodal.retrieval.index import Index

__all__ = ["TunePoint", "TuneResult", "sweep_values", "tune_index"]

REFINES = (1, 2, 4, 8, 16, 32, 64)  # IVF-PQ candidates per hit re-ranked exactly
# FAISS's efSearch range stops at 512: measured at 1M digits rows (M = 16), 512 gave recall@10
# 0.93, so the sweep goes on (it stops at the target, or once slower than exact search).
EF_BEYOND = (1024, 2048, 4096)


@dataclass
class TunePoint:
    """One measured setting: ``settings`` (e.g. ``{"nprobe": 32}``), recall@k, batch QPS."""

    settings: dict[str, int]
    recall: float
    qps: float


@dataclass
class TuneResult:
    """What :func:`tune_index` measured and chose.

    Args:
        backend: the index's backend.
        k: the k of recall@k.
        queries: held-out queries measured.
        target_recall: the recall asked for.
        reached: whether the chosen setting reaches it.
        settings: the chosen setting (now in the index's options).
        recall: its recall@k on the queries.
        qps: its batch queries per second.
        exact_qps: the exact search's batch queries per second, same queries, same run.
        points: every setting measured, in the order measured.
    """

    backend: str
    k: int
    queries: int
    target_recall: float
    reached: bool
    settings: dict[str, int]
    recall: float
    qps: float
    exact_qps: float
    points: list[TunePoint] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        """Batch QPS of the chosen setting over the exact search's."""
        return self.qps / self.exact_qps if self.exact_qps > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict, with the speed-up."""
        return {**asdict(self), "speedup": self.speedup}


def _with_half_steps(values: list[int]) -> list[int]:
    """``values`` (powers of two) and 1.5 times each.

    The cost of a search grows linearly with ``nprobe``/``efSearch``: a target met between
    32 and 64 is met at 48 for 25% less.
    """
    return sorted(set(values) | {v + v // 2 for v in values if v >= 2})


def sweep_values(index: Index, k: int) -> dict[str, list[int]]:
    """The values of each search setting to try, cheapest first.

    FAISS's ParameterSpace values (powers of two up to the index's limits) with a step of
    1.5x between each. ``efSearch`` values below ``k`` are dropped (HNSW then returns
    fewer than k hits).
    """
    faiss = import_faiss()
    searcher = index._faiss
    assert searcher is not None
    space = faiss.ParameterSpace()
    space.initialize(searcher.index)
    found: dict[str, list[int]] = {}
    for i in range(space.parameter_ranges.size()):
        entry = space.parameter_ranges.at(i)
        found[entry.name] = [int(v) for v in faiss.vector_to_array(entry.values)]
    kind = index.faiss_options.kind
    out: dict[str, list[int]] = {}
    if kind in ("ivf", "ivfpq"):
        nlist = int(searcher.index.nlist)
        probes = _with_half_steps(found.get("nprobe", [1]))
        out["nprobe"] = sorted({v for v in probes if v <= nlist} | {nlist})
    if kind == "hnsw":
        values = found.get("efSearch", [16, 32, 64, 128, 256, 512])
        values = _with_half_steps(sorted(set(values) | {v for v in EF_BEYOND
                                                        if v > max(values)}))
        out["ef_search"] = [v for v in values if v >= k] or [k]
    if kind == "ivfpq":
        out["refine"] = list(REFINES)
    return out


def _check_queries(index: Index, queries: Tensor, k: int, target: float) -> Tensor:
    if queries.dim() != 2 or queries.shape[1] != index.dim or queries.shape[0] < 1:
        raise ConfigError(f"tune queries must be [Q >= 1, {index.dim}] (the index's dim), got "
                          f"{tuple(queries.shape)}")
    if not bool(torch.isfinite(queries).all()):
        raise ConfigError("tune queries contain NaN or infinite values")
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"target_recall must be in (0, 1], got {target}")
    if not 1 <= k <= len(index):
        raise ConfigError(f"k must be in [1, {len(index)}] (the index's rows), got {k}")
    return queries.detach().to("cpu", torch.float32)


def _measure(index: Index, queries: Tensor, truth: Tensor, k: int,
             settings: dict[str, int]) -> TunePoint:
    for name, value in settings.items():
        setattr(index.faiss_options, name, int(value))
    started = time.perf_counter()
    _, found = index.faiss_topk(queries, k)
    seconds = max(time.perf_counter() - started, 1e-9)
    return TunePoint(dict(settings), neighbour_recall(found, truth), len(queries) / seconds)


def _sweep(index: Index, queries: Tensor, truth: Tensor, k: int, target: float,
           exact_qps: float, values: dict[str, list[int]]) -> list[TunePoint]:
    # exact_qps = 0 turns the "slower than exact" stop off.
    """Measure settings cheapest first; each inner sweep stops at the target."""
    main = "ef_search" if "ef_search" in values else "nprobe"
    outer = values.get("refine", [None])  # type: ignore[list-item]
    points: list[TunePoint] = []
    for refine in outer:
        for value in values[main]:
            settings = {main: value} if refine is None else {main: value, "refine": refine}
            point = _measure(index, queries, truth, k, settings)
            points.append(point)
            if point.recall >= target or point.qps < exact_qps:
                break
    return points


def _choose(points: list[TunePoint], target: float) -> tuple[TunePoint, bool]:
    """The fastest point at or above the target on FAISS's Pareto front, else the best."""
    faiss = import_faiss()
    front = faiss.OperatingPoints()
    for number, point in enumerate(points):
        front.add(point.recall, 1.0 / point.qps, str(number))
    optimal = [front.optimal_pts.at(i) for i in range(front.optimal_pts.size())]
    good = [p for p in optimal if p.perf >= target]
    if good:
        return points[int(min(good, key=lambda p: p.t).key)], True
    best = max(optimal, key=lambda p: (p.perf, -p.t))
    return points[int(best.key)], False


def tune_index(index: Index, queries: Tensor, target_recall: float = 0.95, k: int = 10,
               stop_when_slower: bool = True) -> TuneResult:
    """Choose the fastest search setting of ``index`` that reaches ``target_recall``.

    Args:
        index: an index with an approximate FAISS backend (``ivf``, ``hnsw``, ``ivfpq``);
            ``exact`` and ``flat`` are exact already (recall 1, nothing to tune).
        queries: held-out query vectors (not rows of the index), ranked by inner product.
        target_recall: the recall@k to reach (overlap with the exact top-k).
        k: the k of recall@k.
        stop_when_slower: end a sweep once a setting is slower than the exact search
            (False: sweep on until the target, whatever the time; timings then decide
            nothing but the choice among points reaching the target).

    Returns:
        A :class:`TuneResult`; the chosen setting is also written into
        ``index.faiss_options`` (with the result under ``tuned``), so a saved index keeps it.

    Shapes:
        queries: ``[Q, D]``.
    """
    queries = _check_queries(index, queries, k, target_recall)
    started = time.perf_counter()
    _, truth = index.exact_topk(lambda chunk: queries @ chunk.T, k)
    exact_qps = len(queries) / max(time.perf_counter() - started, 1e-9)
    kind = "exact" if index.backend == "exact" else index.faiss_options.kind
    if not SEARCH_PARAMETERS.get(kind):
        return TuneResult(index.backend, k, len(queries), target_recall, True, {}, 1.0,
                          exact_qps, exact_qps, [])
    if index._faiss is None or index._faiss_stale:
        index.build_faiss()
    before = {name: getattr(index.faiss_options, name) for name in SEARCH_PARAMETERS[kind]}
    points = _sweep(index, queries, truth, k, target_recall,
                    exact_qps if stop_when_slower else 0.0, sweep_values(index, k))
    chosen, reached = _choose(points, target_recall)
    for name in before:
        setattr(index.faiss_options, name, int(chosen.settings.get(name, before[name])))
    result = TuneResult(index.backend, k, len(queries), target_recall, reached,
                        dict(chosen.settings), chosen.recall, chosen.qps, exact_qps, points)
    index.faiss_options.tuned = {key: value for key, value in result.to_dict().items()
                                 if key != "points"}
    if not reached:
        warnings.warn(f"{index.backend} index: no setting reached recall@{k} = "
                      f"{target_recall} (best {chosen.recall:.3f} with {chosen.settings}); "
                      "use backend='exact' or 'flat', or a larger nlist / hnsw_m",
                      stacklevel=2)
    return result
