"""search ranks by each objective's own rule, checked against formulas written out here."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import anymodal
from anymodal.retrieval.index import Index
from anymodal.retrieval.search import (
    query_rule,
    search,
    search_embeddings,
    search_tuples,
    search_tuples_embeddings,
)

from .conftest import OBJECTIVES, synth


def direct_scores(model: Any, query: dict[str, Tensor], candidates: Tensor,
                  target: str | None = None) -> Tensor:
    """Each objective's retrieval rule, written independently of ``objective.score``.

    Shapes:
        query: ``{m: [Q, D]}``; candidates ``[C, D]``; returns ``[Q, C]``.
    """
    name = model.config.objective.name
    s = float(model.logit_scale().detach())
    qs = [q.double() for q in query.values()]
    c = candidates.double()
    if name in ("clip", "mv_infonce", "mv_dhel"):
        return s * sum(q @ c.T for q in qs)
    if name == "siglip":
        return sum(s * (q @ c.T) + float(model.objective.bias.detach()) for q in qs)
    if name == "symile":
        product = qs[0]
        for q in qs[1:]:
            product = product * q
        # The modalities in neither the query nor the candidates: their missing embeddings.
        for m in model.modalities:
            if m not in query and m != target:
                product = product * torch.nn.functional.normalize(
                    model.missing[m].detach().double(), dim=-1)
        return s * torch.einsum("qd,cd->qc", product, c)
    if name == "gram":
        out = torch.empty(len(qs[0]), len(c), dtype=torch.double)
        for i in range(len(qs[0])):
            for j in range(len(c)):
                vectors = torch.stack([c[j], *(q[i] for q in qs)])
                out[i, j] = -s * torch.linalg.det(vectors @ vectors.T).clamp(min=0).sqrt()
        return out
    raise AssertionError(name)


def check_ranking(model: Any, hits: list[Any], index: Index, query: dict[str, Tensor]) -> None:
    want = direct_scores(model, query, index.embeddings, index.modality)[0]
    order = want.argsort(descending=True)
    assert [h.score for h in hits] == pytest.approx(want[order[:len(hits)]].tolist(),
                                                    rel=1e-4, abs=1e-4)
    # The ids match where the direct scores are not (numerically) tied.
    gaps = want[order[:-1]] - want[order[1:]]
    for position, hit in enumerate(hits[:-1]):
        if gaps[position] > 1e-4 and (position == 0 or gaps[position - 1] > 1e-4):
            assert hit.id == index.ids[int(order[position])]


def _query_embeddings(model: Any, query: dict[str, Any]) -> dict[str, Tensor]:
    return {m: model.embed(m, [v], progress=False) for m, v in query.items()}


def _check_objective(model: Any) -> None:
    index = Index.build(model, "c", synth(model, "c", 40, 0), progress=False)
    for query in ({"a": synth(model, "a", 1, 1)[0]},
                  {"a": synth(model, "a", 1, 2)[0], "b": synth(model, "b", 1, 3)[0]}):
        hits = search(model, query, index, k=40)
        assert len(hits) == 40 and all(isinstance(h, anymodal.Hit) for h in hits)
        check_ranking(model, hits, index, _query_embeddings(model, query))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_search_uses_the_objectives_rule(make_model: Any, objective: str) -> None:
    _check_objective(make_model(objective))


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_trained_model_search_uses_the_objectives_rule(trained_models: Any,
                                                        objective: str) -> None:
    model = anymodal.load_model(trained_models(objective) / "model")
    assert model.config.objective.name == objective
    _check_objective(model)


def test_the_rules_differ_between_objectives(make_model: Any) -> None:
    """Guard against a ranking that ignores the objective: on the same embeddings, CLIP's
    sum, Symile's product and GRAM's volume order the candidates differently."""
    gen = torch.Generator().manual_seed(0)
    cand = torch.nn.functional.normalize(torch.randn(200, 16, generator=gen), dim=-1)
    q = {m: torch.nn.functional.normalize(torch.randn(1, 16, generator=gen), dim=-1)
         for m in ("a", "b")}
    orders = {}
    for objective in ("clip", "symile", "gram"):
        model = make_model(objective)
        index = Index(cand, modality="c", fingerprint=model.fingerprint())
        orders[objective] = [h.id for h in search_embeddings(model, q, index, k=10)[0]]
    assert len({tuple(o) for o in orders.values()}) == 3
    assert query_rule(make_model("siglip").objective) == "sum"
    assert query_rule(make_model("symile").objective) == "product"
    assert query_rule(make_model("gram").objective) == "span"


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_faiss_flat_follows_the_objective(make_model: Any, objective: str) -> None:
    model = make_model(objective)
    items = synth(model, "c", 300, 0)
    exact = Index.build(model, "c", items, progress=False)
    flat = Index.build(model, "c", items, progress=False, backend="flat")
    queries = [{"a": a, "b": b} for a, b in zip(synth(model, "a", 6, 1), synth(model, "b", 6, 2))]
    queries += [{"b": b} for b in synth(model, "b", 3, 3)]
    for want, got in zip(search(model, queries, exact, k=5), search(model, queries, flat, k=5)):
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-4)


def test_batch_queries_with_mixed_modalities(make_model: Any) -> None:
    model = make_model("symile")
    index = Index.build(model, "c", synth(model, "c", 30, 0), progress=False)
    a, b = synth(model, "a", 2, 1), synth(model, "b", 2, 2)
    queries = [{"a": a[0]}, {"a": a[1], "b": b[1]}, {"b": b[0]}, {"b": b[1], "a": a[0]}]
    batch = search(model, queries, index, k=4)
    assert len(batch) == 4
    for query, hits in zip(queries, batch):
        assert hits == search(model, query, index, k=4)
    # k above the index size returns every row.
    assert len(search(model, queries[0], index, k=100)) == 30


def test_search_errors(make_model: Any) -> None:
    model = make_model("clip")
    index = Index.build(model, "c", synth(model, "c", 5, 0), progress=False)
    with pytest.raises(anymodal.ConfigError, match="not in the model"):
        search(model, {"sound": "x.wav"}, index)
    with pytest.raises(ValueError, match="at least one"):
        search(model, {}, index)
    with pytest.raises(ValueError, match="k must be"):
        search(model, {"a": synth(model, "a", 1, 0)[0]}, index, k=0)
    with pytest.raises(anymodal.DataError, match="dim=32"):
        search(model, {"a": "1,2,3"}, index)
    empty = Index(torch.empty(0, 16), modality="c", fingerprint=model.fingerprint())
    assert search(model, {"a": synth(model, "a", 1, 0)[0]}, empty) == []


def naive_tuples(model: Any, query: Tensor, first: Tensor, second: Tensor, k: int
                 ) -> tuple[list[float], list[tuple[int, int]]]:
    """Every (i, j) tuple scored by s · sum_d q[d] x_i[d] y_j[d], then sorted."""
    table = float(model.logit_scale().detach()) * torch.einsum("d,id,jd->ij", query.double(),
                                                      first.double(), second.double())
    values, flat = table.reshape(-1).topk(k)
    return values.tolist(), [(int(f) // second.shape[0], int(f) % second.shape[0])
                             for f in flat]


def _check_tuples(model: Any) -> None:
    ia = Index.build(model, "a", synth(model, "a", 20, 0), progress=False)
    ib = Index.build(model, "b", synth(model, "b", 25, 1), progress=False,
                     ids=[f"b{i}" for i in range(25)])
    texts = synth(model, "c", 3, 2)
    results = search_tuples(model, [{"c": t} for t in texts], [ia, ib], k=15)
    for text, hits in zip(texts, results):
        q = model.embed("c", [text], progress=False)[0]
        values, pairs = naive_tuples(model, q, ia.embeddings, ib.embeddings, 15)
        assert [h.score for h in hits] == pytest.approx(values, rel=1e-4, abs=1e-5)
        assert [h.ids for h in hits][:3] == [(ia.ids[i], ib.ids[j]) for i, j in pairs][:3]
        assert all(len(h.ids) == 2 and len(h.payloads) == 2 for h in hits)
    # One index is an ordinary Symile search; k is capped at the number of tuples.
    single = search_tuples(model, {"c": texts[0]}, [ia], k=100)
    assert len(single) == 20
    plain = search(model, {"c": texts[0]}, ia, k=20)
    assert [h.ids[0] for h in single] == [h.id for h in plain]


def test_symile_tuple_search_matches_the_naive_product(make_model: Any) -> None:
    _check_tuples(make_model("symile"))


@pytest.mark.slow
def test_trained_symile_tuple_search(trained_models: Any) -> None:
    _check_tuples(anymodal.load_model(trained_models("symile") / "model"))


def test_tuple_search_needs_a_product_rule(make_model: Any) -> None:
    model = make_model("clip")
    ia = Index.build(model, "a", synth(model, "a", 4, 0), progress=False)
    with pytest.raises(anymodal.ConfigError, match="Symile"):
        search_tuples_embeddings(model, {"c": torch.randn(1, 16)}, [ia, ia])

