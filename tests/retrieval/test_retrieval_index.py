"""Index: building, editing, files (round trip, damage, foreign models), exact and FAISS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import anymodal
from anymodal.retrieval.backends import chunked_topk
from anymodal.retrieval.index import Index
from anymodal.retrieval.search import search, search_embeddings
from anymodal.retrieval.storage import IndexFileError

from .conftest import synth


def random_index(n: int = 500, dim: int = 16, seed: int = 0, **kwargs: Any) -> Index:
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return Index(x, [f"id{i}" for i in range(n)], [{"row": i} for i in range(n)],
                 modality="c", **kwargs)


def test_exports() -> None:
    assert anymodal.Index is Index
    assert anymodal.search is search
    assert "Index" in anymodal.__all__ and "search" in anymodal.__all__


def test_build_add_remove(make_model: Any) -> None:
    model = make_model()
    items = synth(model, "c", 10, 0)
    index = Index.build(model, "c", items, progress=False)
    assert len(index) == 10 and index.dim == 16
    assert index.ids == [str(i) for i in range(10)]
    assert torch.allclose(index.embeddings.norm(dim=1), torch.ones(10))
    # The rows are the model's own embeddings of the items.
    direct = model.embed("c", items, progress=False)
    assert torch.allclose(index.embeddings, direct, atol=1e-6)
    added = index.add(model, synth(model, "c", 3, 1), ids=["x", "y", "z"],
                      payloads=["px", "py", "pz"], progress=False)
    assert added == 3 and len(index) == 13 and index.payloads[-1] == "pz"
    assert index.remove(["3", "y"]) == 2
    assert "3" not in index and "y" not in index and "x" in index
    assert index.row("x") == 9 and index.ids[9:] == ["x", "z"]
    # Default ids keep counting without clashing after a removal.
    index.add_embeddings(torch.randn(2, 16))
    assert len(set(index.ids)) == len(index) == 13 and index.ids[-2:] == ["11", "12"]
    with pytest.raises(KeyError, match="nope"):
        index.remove(["nope"])
    assert index.remove(["nope"], missing_ok=True) == 0
    with pytest.raises(ValueError, match="unique"):
        index.add_embeddings(torch.randn(1, 16), ids=["x"])


def test_bad_items_are_skipped_and_reported(make_model: Any) -> None:
    model = make_model()
    items = [*synth(model, "c", 3, 0), "1,2,3", synth(model, "c", 1, 1)[0]]
    with pytest.raises(anymodal.DataError, match="item 3"):
        Index.build(model, "c", items, progress=False)
    failures: list[tuple[int, str]] = []
    index = Index.build(model, "c", items, ids=list("abcde"), progress=False,
                        on_error="skip", failures=failures)
    assert index.ids == ["a", "b", "c", "e"]
    assert [i for i, _ in failures] == [3] and "expected dim=32" in failures[0][1]


def test_round_trip_gives_identical_results(make_model: Any, tmp_path: Path) -> None:
    model = make_model()
    index = Index.build(model, "c", synth(model, "c", 40, 0), progress=False,
                        payloads=[{"caption": f"item {i}"} for i in range(40)])
    queries = [{"a": q} for q in synth(model, "a", 5, 7)]
    before = search(model, queries, index, k=7)
    index.save(tmp_path / "c.index")
    loaded = Index.load(tmp_path / "c.index", model=model)
    assert loaded.ids == index.ids and loaded.payloads == index.payloads
    assert torch.equal(loaded.embeddings, index.embeddings)
    assert loaded.fingerprint == model.fingerprint()
    assert search(model, queries, loaded, k=7) == before
    header = json.loads((tmp_path / "c.index" / "index.json").read_text())
    assert header["format_version"] == 2 and header["count"] == 40
    assert set(header["checksums"]) == {"embeddings.safetensors", "items.jsonl"}


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "x.index"
    random_index(10).save(path)
    random_index(20, seed=1).save(path)
    assert len(Index.load(path)) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["x.index"]  # no temporary left behind
    (tmp_path / "other").mkdir()
    with pytest.raises(IndexFileError, match="not an index folder"):
        random_index(5).save(tmp_path / "other")


def _damage(path: Path, name: str) -> None:
    data = bytearray((path / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / name).write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip_embeddings", "flip_items", "truncate", "missing",
                                    "bad_json", "version", "not_a_folder"])
def test_damaged_index_is_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "d.index"
    random_index(50).save(path)
    if damage == "flip_embeddings":
        _damage(path, "embeddings.safetensors")
        match = "embeddings.safetensors.*damaged"
    elif damage == "flip_items":
        _damage(path, "items.jsonl")
        match = "items.jsonl.*damaged"
    elif damage == "truncate":
        data = (path / "embeddings.safetensors").read_bytes()
        (path / "embeddings.safetensors").write_bytes(data[: len(data) // 3])
        match = "damaged"
    elif damage == "missing":
        (path / "items.jsonl").unlink()
        match = "items.jsonl is missing"
    elif damage == "bad_json":
        (path / "index.json").write_text("{not json")
        match = "index.json.*not valid JSON"
    elif damage == "version":
        header = json.loads((path / "index.json").read_text())
        header["format_version"] = 99
        (path / "index.json").write_text(json.dumps(header))
        match = "format version 99"
    else:
        path = tmp_path / "plain.txt"
        path.write_text("hello")
        match = "not an index folder"
    with pytest.raises(IndexFileError, match=match) as info:
        Index.load(path)
    assert isinstance(info.value, anymodal.DataError)
    assert str(path) in str(info.value)


def test_index_of_another_model_is_refused(make_model: Any, tmp_path: Path) -> None:
    model, other = make_model(seed=0), make_model(seed=1)
    index = Index.build(model, "c", synth(model, "c", 8, 0), progress=False)
    index.save(tmp_path / "c.index")
    with pytest.raises(IndexFileError, match="another space") as info:
        Index.load(tmp_path / "c.index", model=other)
    assert "c.index" in str(info.value)
    loaded = Index.load(tmp_path / "c.index")
    with pytest.raises(IndexFileError, match="fingerprint"):
        search(other, {"a": synth(other, "a", 1, 0)[0]}, loaded)
    # Training the model changes it: the cached fingerprint follows the weights.
    with torch.no_grad():
        model.heads["c"].net.weight.add_(0.01)
    with pytest.raises(IndexFileError):
        search(model, {"a": synth(model, "a", 1, 0)[0]}, loaded)


def test_chunked_search_equals_full_matrix() -> None:
    gen = torch.Generator().manual_seed(0)
    corpus = torch.randn(1000, 12, generator=gen)
    queries = torch.randn(7, 12, generator=gen)
    full = queries @ corpus.T
    want_v, want_i = full.topk(25, dim=1)
    for chunk in (1, 7, 64, 999, 1000, 5000):
        v, i = chunked_topk(lambda c: queries @ c.T, corpus, 25, chunk)
        assert torch.equal(i, want_i), chunk
        assert torch.allclose(v, want_v)
    # k equal to the corpus size, and a single-row corpus.
    v, i = chunked_topk(lambda c: queries @ c.T, corpus, 1000, 128)
    assert torch.equal(i.sort(dim=1).values, torch.arange(1000).expand(7, -1))
    v, i = chunked_topk(lambda c: queries @ c.T, corpus[:1], 1, 128)
    assert i.tolist() == [[0]] * 7
    with pytest.raises(ValueError):
        chunked_topk(lambda c: queries @ c.T, corpus, 1001, 128)


def test_index_exact_search_in_chunks_matches_model_score(make_model: Any) -> None:
    model = make_model("clip")
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(2))
    small = Index(x, modality="c", fingerprint=model.fingerprint(), chunk_size=17)
    big = Index(x, modality="c", fingerprint=model.fingerprint(), chunk_size=10_000)
    q = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    a = search_embeddings(model, {"a": q}, small, k=300)
    b = search_embeddings(model, {"a": q}, big, k=300)
    full = model.score({"a": q}, small.embeddings)
    for hits_a, hits_b, row in zip(a, b, full):
        assert [h.id for h in hits_a] == [h.id for h in hits_b]
        assert [h.id for h in hits_a] == [str(i) for i in row.argsort(descending=True).tolist()]
        assert [h.score for h in hits_a] == pytest.approx(row.sort(descending=True).values.tolist(),
                                                          abs=1e-5)


def test_faiss_flat_equals_exact(make_model: Any) -> None:
    model = make_model("clip")
    x = torch.randn(2000, 16, generator=torch.Generator().manual_seed(3))
    exact = Index(x, modality="c", fingerprint=model.fingerprint())
    flat = Index(x, modality="c", fingerprint=model.fingerprint(), backend="flat")
    q = {"a": torch.nn.functional.normalize(torch.randn(20, 16), dim=-1),
         "b": torch.nn.functional.normalize(torch.randn(20, 16), dim=-1)}
    want = search_embeddings(model, q, exact, k=10)
    got = search_embeddings(model, q, flat, k=10)
    assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in want]
    for hits_g, hits_w in zip(got, want):
        assert [h.score for h in hits_g] == pytest.approx([h.score for h in hits_w], abs=1e-4)


@pytest.mark.parametrize("backend", ["ivf", "hnsw"])
def test_approximate_backends_find_most_neighbours(backend: str) -> None:
    index = random_index(3000, 16, seed=4, backend=backend, nprobe=32)
    q = torch.nn.functional.normalize(torch.randn(50, 16, generator=torch.Generator()
                                                  .manual_seed(5)), dim=-1)
    _, got = index.faiss_topk(q, 10)
    _, want = (q @ index.embeddings.T).topk(10, dim=1)
    recall = sum(len(set(g.tolist()) & set(w.tolist())) for g, w in zip(got, want)) / 500
    assert recall > 0.9


def test_faiss_index_is_saved_updated_and_rebuilt(tmp_path: Path) -> None:
    index = random_index(600, backend="hnsw")
    q = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)
    before = index.faiss_topk(q, 5)
    index.save(tmp_path / "h.index")
    assert json.loads((tmp_path / "h.index" / "index.json").read_text())["has_faiss"]
    loaded = Index.load(tmp_path / "h.index")
    assert loaded._faiss is not None and not loaded._faiss_stale  # not rebuilt
    after = loaded.faiss_topk(q, 5)
    assert torch.equal(before[1], after[1])
    # Added rows join the FAISS index; a removal rebuilds it at the next search.
    target = torch.nn.functional.normalize(q[0], dim=0)
    loaded.add_embeddings(target[None] * 3, ids=["new"])
    assert loaded.faiss_topk(q[:1], 1)[1].item() == loaded.row("new")
    loaded.remove(["new", "id0"])
    assert loaded._faiss_stale
    rows = loaded.faiss_topk(q, 5)[1]
    assert loaded._faiss.ntotal == len(loaded) == 599
    assert int(rows.max()) < len(loaded)
    # Another backend on load ignores the saved FAISS index.
    flat = Index.load(tmp_path / "h.index", backend="flat")
    assert flat.backend == "flat" and flat._faiss is None


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(anymodal.ConfigError, match="backend"):
        random_index(5, backend="annoy")


def test_ivf_sizes_follow_the_faiss_guide() -> None:
    from anymodal.retrieval.backends import default_nlist, default_train_size

    # 16 sqrt(N) cells (the top of the guide's 4..16 sqrt(N)), at most N/39 (39 training
    # rows a cell).
    assert default_nlist(1_000_000) == 16_000
    assert default_nlist(10_000_000) == 50_596
    assert default_nlist(100_000) == 2564 == 100_000 // 39
    assert default_nlist(10_000) == 256 == 10_000 // 39
    assert default_nlist(50) == 1
    # k-means on 40 rows a cell (the guide: 30..256), PQ on 39 a code; never above N.
    assert default_train_size(4000, 1_000_000) == 160_000
    assert default_train_size(10, 1_000_000, pq_bits=8) == 39 * 256
    assert default_train_size(256, 10_000) == 10_000
    index = random_index(4000, 16, backend="ivf")
    index.build_faiss()
    assert index._faiss is not None and index._faiss.index.nlist == 4000 // 39


def test_ivfpq_reranks_its_candidates_with_the_exact_rows(tmp_path: Path) -> None:
    index = random_index(2000, 32, seed=6, backend="ivfpq", nprobe=4)
    q = torch.nn.functional.normalize(torch.randn(20, 32, generator=torch.Generator()
                                                  .manual_seed(7)), dim=-1)
    scores, rows = index.faiss_topk(q, 10)
    # The scores are the exact inner products of the rows returned, best first.
    exact = torch.einsum("qkd,qd->qk", index.embeddings[rows], q)
    torch.testing.assert_close(scores, exact)
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())
    assert index._faiss is not None and index._faiss.index.pq.M == 4  # 32 / 8 bytes a code
    # Every cell visited and every row a candidate: the re-ranked answer is the exact one.
    index.faiss_options.nprobe = index._faiss.index.nlist
    index.faiss_options.refine = 200
    _, want = (q @ index.embeddings.T).topk(10, dim=1)
    assert torch.equal(index.faiss_topk(q, 10)[1], want)
    index.save(tmp_path / "pq.index")
    loaded = Index.load(tmp_path / "pq.index")
    assert loaded.backend == "ivfpq" and loaded.faiss_options.refine == 200
    assert torch.equal(loaded.faiss_topk(q, 10)[1], want)


def test_ivf_with_an_hnsw_quantizer_finds_the_exact_answer_when_probing_every_cell(
        tmp_path: Path) -> None:
    from anymodal.retrieval.backends import HNSW_QUANTIZER_FROM, FaissOptions, uses_hnsw_quantizer

    # Large IVF indexes pick their cells through an HNSW graph over the centroids.
    ivf = FaissOptions(kind="ivf")
    assert uses_hnsw_quantizer(ivf, HNSW_QUANTIZER_FROM)
    assert not uses_hnsw_quantizer(ivf, HNSW_QUANTIZER_FROM - 1)
    assert not uses_hnsw_quantizer(FaissOptions(kind="ivf", quantizer="flat"), 16_000)
    index = random_index(3000, 16, seed=3, backend="ivf", nlist=60, quantizer="hnsw")
    q = torch.nn.functional.normalize(torch.randn(25, 16, generator=torch.Generator()
                                                  .manual_seed(8)), dim=-1)
    index.faiss_options.nprobe = 60
    _, rows = index.faiss_topk(q, 10)
    assert index._faiss is not None
    faiss = index._faiss.faiss
    quantizer = faiss.downcast_index(index._faiss.index.quantizer)
    assert isinstance(quantizer, faiss.IndexHNSWFlat) and quantizer.ntotal == 60
    _, want = (q @ index.embeddings.T).topk(10, dim=1)
    assert torch.equal(rows, want)
    # Fewer probes: an approximate answer, the same after a save and load.
    index.faiss_options.nprobe = 4
    _, few = index.faiss_topk(q, 10)
    assert not torch.equal(few, want)
    index.save(tmp_path / "hnswq.index")
    loaded = Index.load(tmp_path / "hnswq.index")
    assert loaded.faiss_options.quantizer == "hnsw"
    assert torch.equal(loaded.faiss_topk(q, 10)[1], few)


def test_bad_faiss_options_are_config_errors() -> None:
    with pytest.raises(anymodal.ConfigError, match="nprobe must be >= 1"):
        random_index(50, backend="ivf", nprobe=0)
    with pytest.raises(anymodal.ConfigError, match="quantizer='ivf'; valid"):
        random_index(50, backend="ivf", quantizer="ivf")
    with pytest.raises(anymodal.ConfigError, match="pq_m=5 must divide the dimension 16"):
        random_index(500, backend="ivfpq", pq_m=5).build_faiss()
