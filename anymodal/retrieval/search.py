"""Any-to-any search ranked by the objective the model was trained with.

``search(model, {"audio": "a.wav", "video": "v.mp4"}, index, k)`` embeds each query item
with its modality's plugin and ranks the index's rows with ``model.score`` (the objective's
``score``): CLIP, SigLIP and the multi-view losses sum the query modalities' similarities,
Symile takes the inner product of the candidate with the elementwise product of the query
embeddings, GRAM ranks by the (negated) volume the candidate spans with the query.

**Exact search** (``backend="exact"``, the default) applies the objective's ``score`` to
the corpus chunk by chunk: the ranking is the objective's rule, whatever it is.

**FAISS search** is by inner product with one vector per query. For the objectives whose
score is an increasing function of ``<v(query), candidate>`` (a positive scale and a
constant shift), ``v`` is known exactly: the sum of the query embeddings (``clip``,
``siglip``, ``mv_infonce``, ``mv_dhel``) or their elementwise product (``symile``); FAISS
then finds the objective's own top-k (exactly with ``flat``, approximately with IVF/HNSW).
For any other rule FAISS only *generates candidates*, which the objective's ``score`` then
re-ranks exactly. For ``gram`` the volume with a unit candidate ``c`` is
``sqrt(det G(q_1..q_M) · (1 - |P c|²))``, ``P`` the projection onto the span of the query
embeddings: the candidates are the ``rerank · k`` best rows along each of ``±u_i``, an
orthonormal basis ``u`` of that span (``2M`` FAISS searches per query). For an unknown
rule (a plugin objective) they are the ``rerank · k`` best rows by inner product with the
normalised sum of the query embeddings. This is an approximation even with ``flat``: a
row outside the candidate set is never returned. Use ``backend="exact"`` where that
matters. In every case the scores returned are the objective's own ``score`` values.

**Tuple search** (:func:`search_tuples`, Symile) ranks every tuple of rows from several
indexes (a text against every (audio, video) pair) with the multilinear inner product,
through :func:`anymodal.kernels.mip_topk`, never materialising the tuple table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.retrieval.index import Hit, Index

if TYPE_CHECKING:
    from anymodal.model import MultiModalModel

__all__ = ["TupleHit", "query_rule", "query_vector", "search", "search_embeddings",
           "search_tuples", "search_tuples_embeddings"]

Query = Mapping[str, Any]


class TupleHit(NamedTuple):
    """One tuple search result: unpacks as ``(ids, score, payloads)``, one id per index."""

    ids: tuple[str, ...]
    score: float
    payloads: tuple[Any, ...]


def query_rule(objective: Any) -> str | None:
    """How the objective's ``score`` depends on the candidate: its declared ``query_rule``.

    ``"sum"`` / ``"product"``: an increasing function of the inner product of the candidate
    with the sum / elementwise product of the query embeddings (and, for ``"product"``, of
    the missing embeddings of the absent modalities). ``"span"`` (GRAM): a decreasing
    function of the volume, i.e. increasing in the candidate's squared projection onto the
    span of the query embeddings. None: unknown. Every objective declares its rule as a
    class attribute (:class:`anymodal.objectives.Objective`); a plugin objective that does
    not subclass it may declare one too.
    """
    declared = getattr(objective, "query_rule", None)
    return declared if isinstance(declared, str) else None


def query_vector(objective: Any, query: Mapping[str, Tensor],
                 missing: Mapping[str, Tensor] | None = None) -> Tensor | None:
    """The one vector per query whose inner product ranks like the objective's score.

    None when the rule has none (see :func:`query_rule`).

    Args:
        objective: the model's objective.
        query: the query embeddings.
        missing: the missing embeddings of the modalities in neither the query nor the
            candidates (used by the ``"product"`` rule).

    Shapes:
        query: ``{m: [Q, D]}``; missing: ``{m: [D]}``; returns ``[Q, D]``.
    """
    from anymodal.objectives.base import query_product

    rule = query_rule(objective)
    if rule == "sum":
        return torch.stack(list(query.values())).sum(0)
    if rule == "product":
        return query_product(query, missing)
    return None


def _check_query(model: MultiModalModel, query: Mapping[str, Any]) -> None:
    if not query:
        raise ValueError("a query needs at least one modality")
    unknown = [key for key in query if key not in model.modalities]
    if unknown:
        raise ConfigError(f"query modalities {unknown} are not in the model "
                          f"({sorted(model.modalities)})")


def embed_queries(model: MultiModalModel, queries: Sequence[Query], batch_size: int = 64
                  ) -> list[tuple[list[int], dict[str, Tensor]]]:
    """Embed raw queries, grouped by their set of modalities.

    Returns:
        ``[(positions, {m: [n, D]}), ...]``: the queries at ``positions`` share modalities.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, query in enumerate(queries):
        _check_query(model, query)
        groups.setdefault(tuple(query), []).append(position)
    out = []
    for keys, positions in groups.items():
        embedded = {key: model.embed(key, [queries[p][key] for p in positions],
                                     batch_size=batch_size, progress=False) for key in keys}
        out.append((positions, embedded))
    return out


def search(model: MultiModalModel, query: Query | Sequence[Query], index: Index, k: int = 10,
           *, batch_size: int = 64, rerank: int = 10, device: torch.device | str | None = None,
           check_model: bool = True) -> list[Hit] | list[list[Hit]]:
    """Search ``index`` with raw query items of one or more modalities.

    Args:
        model: the model that built the index.
        query: ``{"audio": "a.wav", "video": "v.mp4"}`` for one query, or a list of such
            dicts for a batch (they may use different modalities).
        index: an :class:`Index` of the target modality.
        k: hits per query (fewer when the index is smaller).
        batch_size: items embedded at once.
        rerank: FAISS candidates per hit for rules that FAISS cannot rank (module doc).
        device: where the exact search scores (default: the model's device).
        check_model: refuse an index built by another model.

    Returns:
        For one query, a list of :class:`Hit` ``(id, score, payload)``, best first; for a
        list, one such list per query.
    """
    single = isinstance(query, Mapping)
    queries: list[Query] = [query] if single else list(query)  # type: ignore[list-item, arg-type]
    if check_model:
        index.check_model(model)
    results: list[list[Hit]] = [[] for _ in queries]
    for positions, embedded in embed_queries(model, queries, batch_size):
        hits = search_embeddings(model, embedded, index, k, rerank=rerank, device=device,
                                 check_model=False)
        for position, found in zip(positions, hits):
            results[position] = found
    return results[0] if single else results


@torch.no_grad()
def search_embeddings(model: MultiModalModel, query: Mapping[str, Tensor], index: Index,
                      k: int = 10, *, rerank: int = 10,
                      device: torch.device | str | None = None,
                      check_model: bool = True) -> list[list[Hit]]:
    """:func:`search` for queries that are already embedded.

    Shapes:
        query: ``{m: [Q, D]}`` (one row per query, every modality).
    """
    _check_query(model, query)
    if check_model:
        index.check_model(model)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_queries = next(iter(query.values())).shape[0]
    if len(index) == 0:
        return [[] for _ in range(n_queries)]
    if index.backend == "exact":
        where = torch.device(device) if device is not None else model.device
        moved = {m: q.to(where, torch.float32) for m, q in query.items()}
        values, rows = index.exact_topk(
            lambda chunk: model.score(moved, chunk, target=index.modality), k, where)
    else:
        values, rows = _faiss_search(model, query, index, k, rerank)
    return [[index.hit(int(r), float(v)) for v, r in zip(vs, rs) if r >= 0]
            for vs, rs in zip(values.tolist(), rows.tolist())]


def _span_directions(query: Mapping[str, Tensor]) -> Tensor:
    """``±u_i`` for an orthonormal basis ``u`` of the span of each query's embeddings.

    Shapes:
        query: ``{m: [Q, D]}``; returns ``[Q, 2M, D]``.
    """
    stacked = torch.stack(list(query.values()), dim=2)  # [Q, D, M]
    basis = torch.linalg.qr(stacked.double()).Q.float().transpose(1, 2)  # [Q, M, D]
    return torch.cat([basis, -basis], dim=1)


def _drop_repeats(rows: Tensor) -> Tensor:
    """Each row's candidate numbers with repeats replaced by -1 (order not kept).

    Shapes:
        rows: ``[Q, L]`` int64; returns ``[Q, L]``.
    """
    rows = rows.sort(dim=1).values
    repeat = torch.zeros_like(rows, dtype=torch.bool)
    repeat[:, 1:] = rows[:, 1:] == rows[:, :-1]
    return rows.masked_fill(repeat, -1)


def _faiss_search(model: MultiModalModel, query: Mapping[str, Tensor], index: Index, k: int,
                  rerank: int, block: int = 256) -> tuple[Tensor, Tensor]:
    """FAISS candidates, then the objective's score on them (see the module doc)."""
    cpu = {m: q.detach().to("cpu", torch.float32) for m, q in query.items()}
    rule = query_rule(model.objective)
    if rule in ("sum", "product"):
        missing = model.missing_embeddings(model.absent_modalities(cpu, index.modality))
        vector = query_vector(model.objective, cpu, {m: v.cpu() for m, v in missing.items()})
        directions = vector[:, None, :]  # type: ignore[index]
        wanted = min(len(index), k)
    else:
        # Candidate generation only; the objective's score re-ranks below. For GRAM the
        # volume with a unit candidate c is sqrt(det G(query)·(1 - |P c|²)), P the projection
        # onto the query span: the rows with the largest |u_i · c| along an orthonormal
        # basis u of that span are the natural candidates.
        directions = (_span_directions(cpu) if rule == "span" else torch.nn.functional
                      .normalize(torch.stack(list(cpu.values())).sum(0), dim=-1)[:, None, :])
        wanted = min(len(index), max(k, k * rerank))
    n_queries, n_dirs, dim = directions.shape
    _, candidates = index.faiss_topk(directions.reshape(n_queries * n_dirs, dim), wanted)
    candidates = candidates.reshape(n_queries, -1)
    if n_dirs > 1:
        candidates = _drop_repeats(candidates)
    embeddings = index.embeddings.to("cpu")
    out_v, out_r = [], []
    for start in range(0, n_queries, block):
        rows = candidates[start:start + block]
        unique, inverse = torch.unique(rows.clamp(min=0), return_inverse=True)
        part = {m: q[start:start + block].to(model.device) for m, q in cpu.items()}
        scores = model.score(part, embeddings[unique].to(model.device),
                             target=index.modality).float().cpu()
        scores = scores.gather(1, inverse).masked_fill(rows < 0, float("-inf"))
        v, pos = scores.topk(min(k, scores.shape[1]), dim=1)
        out_v.append(v)
        out_r.append(rows.gather(1, pos).masked_fill(torch.isinf(v), -1))
    return torch.cat(out_v), torch.cat(out_r)


def search_tuples(model: MultiModalModel, query: Query | Sequence[Query],
                  indexes: Sequence[Index], k: int = 10, *, batch_size: int = 64,
                  check_model: bool = True) -> list[TupleHit] | list[list[TupleHit]]:
    """Symile tuple search: the ``k`` best tuples of rows of ``indexes`` for each query.

    A tuple is ``(row of indexes[0], row of indexes[1], ...)``, ranked by
    ``s · MIP(query..., missing..., candidate_1, ..., candidate_K)`` (the missing embeddings
    of the modalities in neither the query nor the indexes).

    Example: a text query against every (audio, video) pair of an audio and a video index.
    The search goes through :func:`anymodal.kernels.mip_topk`, which streams the
    ``A_1 x ... x A_K`` table of a query in blocks with a running top-k.

    Args:
        model: the model that built the indexes.
        query: one dict of raw items (or a list of dicts), as in :func:`search`.
        indexes: K >= 1 indexes of the candidate modalities, in tuple order.
        k: tuples per query (at most the number of tuples).
        batch_size: items embedded at once.
        check_model: refuse indexes built by another model.

    Returns:
        :class:`TupleHit` ``(ids, score, payloads)`` lists, best first.

    Raises:
        ConfigError: the model's objective does not score by a multilinear product.
    """
    single = isinstance(query, Mapping)
    queries: list[Query] = [query] if single else list(query)  # type: ignore[list-item, arg-type]
    if check_model:
        for index in indexes:
            index.check_model(model)
    results: list[list[TupleHit]] = [[] for _ in queries]
    for positions, embedded in embed_queries(model, queries, batch_size):
        hits = search_tuples_embeddings(model, embedded, indexes, k, check_model=False)
        for position, found in zip(positions, hits):
            results[position] = found
    return results[0] if single else results


@torch.no_grad()
def search_tuples_embeddings(model: MultiModalModel, query: Mapping[str, Tensor],
                             indexes: Sequence[Index], k: int = 10, *,
                             check_model: bool = True) -> list[list[TupleHit]]:
    """:func:`search_tuples` for queries that are already embedded.

    Shapes:
        query: ``{m: [Q, D]}``.
    """
    from anymodal.kernels import mip_topk

    _check_query(model, query)
    if not indexes:
        raise ValueError("tuple search needs at least one index")
    if query_rule(model.objective) != "product":
        raise ConfigError(
            f"tuple search ranks tuples by the multilinear inner product (Symile); this "
            f"model's objective is {model.config.objective.name!r}. Search each index "
            "separately with anymodal.search instead"
        )
    if check_model:
        for index in indexes:
            index.check_model(model)
    n_queries = next(iter(query.values())).shape[0]
    if any(len(index) == 0 for index in indexes):
        return [[] for _ in range(n_queries)]
    # The modalities in neither the query nor the tuple take part by their missing embeddings.
    targets = {index.modality for index in indexes}
    absent = [m for m in model.modalities if m not in query and m not in targets]
    vector = query_vector(model.objective, query, model.missing_embeddings(absent))
    assert vector is not None
    factors = [index.embeddings for index in indexes]
    total = 1
    for f in factors:
        total *= f.shape[0]
    vector = vector.to(factors[0].device, torch.float32)
    values, tuples = mip_topk(vector, factors, min(k, total))
    values = values * model.logit_scale().to(values.device).float()
    out: list[list[TupleHit]] = []
    for vs, ts in zip(values.tolist(), tuples.tolist()):
        out.append([
            TupleHit(tuple(ix.ids[j] for ix, j in zip(indexes, rows)), float(v),
                     tuple(ix.payloads[j] for ix, j in zip(indexes, rows)))
            for v, rows in zip(vs, ts)
        ])
    return out
