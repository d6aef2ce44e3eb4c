"""Index.tune: the fastest measured setting reaching a recall target, kept in the index."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.retrieval import tune as tune_module
from anymodal.retrieval.index import Index
from anymodal.retrieval.metrics import neighbour_recall


def clustered(n: int, seed: int, dim: int = 32, clusters: int = 40) -> torch.Tensor:
    """Overlapping Gaussian clusters (neighbours spread over several IVF cells)."""
    g = torch.Generator().manual_seed(100)
    centres = torch.randn(clusters, dim, generator=g)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(clusters, (n,), generator=g)
    return torch.nn.functional.normalize(centres[pick] + torch.randn(n, dim, generator=g),
                                         dim=-1)


def test_neighbour_recall_is_the_overlap_with_the_exact_top_k() -> None:
    truth = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = torch.tensor([[4, 3, 9, -1], [5, 6, 7, 8]])  # order does not matter
    assert neighbour_recall(found, truth) == pytest.approx((2 + 4) / 8)
    # Only the first k of a longer answer count.
    assert neighbour_recall(torch.tensor([[9, 9, 9, 9, 1, 2]]), truth[:1]) == 0.0
    with pytest.raises(ValueError, match="fewer than k"):
        neighbour_recall(found[:, :2], truth)


def test_tune_reaches_the_target_with_the_cheapest_nprobe(tmp_path: Path) -> None:
    index = Index(clustered(6000, 0), modality="x", backend="ivf", nprobe=1)
    # Not stopped by timings (a loaded machine could make a small IVF slower than exact).
    result = tune_module.tune_index(index, clustered(200, 1), 0.9, 10, stop_when_slower=False)
    assert result.reached and result.recall >= 0.9
    probes = [p.settings["nprobe"] for p in result.points]
    # Cheapest first, stopped at the first setting that reaches the target: that one won.
    assert probes == sorted(probes) and result.settings == {"nprobe": probes[-1]}
    assert all(p.recall < 0.9 for p in result.points[:-1])
    assert index.faiss_options.nprobe == probes[-1] > 1
    assert index.faiss_options.tuned is not None
    assert index.faiss_options.tuned["recall"] == result.recall
    # The setting holds on other held-out queries, and survives saving.
    held_out = clustered(200, 2)
    truth = index.exact_topk(lambda c: held_out @ c.T, 10)[1]
    assert neighbour_recall(index.faiss_topk(held_out, 10)[1], truth) >= 0.85
    index.save(tmp_path / "t.index")
    loaded = Index.load(tmp_path / "t.index")
    assert loaded.faiss_options.nprobe == probes[-1]
    assert loaded.faiss_options.tuned == index.faiss_options.tuned


def test_the_sweep_steps_by_half_powers_of_two_up_to_every_cell() -> None:
    index = Index(clustered(6000, 0), modality="x", backend="ivf")
    index.build_faiss()
    nlist = 6000 // 39  # default_nlist: 16 sqrt(N), at most N / 39
    # FAISS's powers of two, 1.5 times each between them, and every cell at the end.
    assert tune_module.sweep_values(index, 10)["nprobe"] == [
        1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 153]
    assert index._faiss is not None and index._faiss.index.nlist == nlist == 153
    hnsw = Index(clustered(300, 0), modality="x", backend="hnsw")
    hnsw.build_faiss()
    efs = tune_module.sweep_values(hnsw, 10)["ef_search"]
    assert efs[:4] == [12, 16, 24, 32] and efs[-2:] == [4096, 6144]


@pytest.mark.parametrize("backend", ["hnsw", "ivfpq"])
def test_tune_other_backends(backend: str) -> None:
    index = Index(clustered(3000, 0), modality="x", backend=backend)
    result = tune_module.tune_index(index, clustered(100, 1), 0.9, 5, stop_when_slower=False)
    assert result.reached and result.recall >= 0.9
    names = {"hnsw": {"ef_search"}, "ivfpq": {"nprobe", "refine"}}[backend]
    assert set(result.settings) == names
    for name, value in result.settings.items():
        assert getattr(index.faiss_options, name) == value


def test_an_unreachable_target_keeps_the_best_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    index = Index(clustered(3000, 0), modality="x", backend="ivf")
    monkeypatch.setattr(tune_module, "sweep_values", lambda index, k: {"nprobe": [1, 2]})
    with pytest.warns(UserWarning, match="no setting reached recall@10 = 0.99"):
        result = index.tune(clustered(100, 1), target_recall=0.99)
    assert not result.reached and result.recall < 0.99
    best = max(result.points, key=lambda p: p.recall)
    assert result.settings == best.settings
    assert index.faiss_options.tuned is not None and not index.faiss_options.tuned["reached"]


@pytest.mark.parametrize("backend", ["exact", "flat"])
def test_exact_backends_have_nothing_to_tune(backend: str) -> None:
    index = Index(clustered(500, 0), modality="x", backend=backend)
    result = index.tune(clustered(20, 1))
    assert result.reached and result.recall == 1.0 and result.settings == {}


def test_bad_tune_arguments_are_config_errors() -> None:
    index = Index(clustered(500, 0), modality="x", backend="ivf")
    with pytest.raises(anymodal.ConfigError, match=r"\[Q >= 1, 32\].*\(20, 16\)"):
        index.tune(torch.randn(20, 16))
    bad = clustered(5, 1)
    bad[2, 3] = float("nan")
    with pytest.raises(anymodal.ConfigError, match="NaN"):
        index.tune(bad)
    with pytest.raises(anymodal.ConfigError, match="target_recall"):
        index.tune(clustered(5, 1), target_recall=1.5)
    with pytest.raises(anymodal.ConfigError, match="k must be"):
        index.tune(clustered(5, 1), k=501)


def test_cli_index_tune_stores_the_setting(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from safetensors.torch import save_file

    from anymodal.cli import main

    Index(clustered(4000, 0), modality="x", backend="ivf", nprobe=1).save(tmp_path / "i.index")
    save_file({"embeddings": clustered(100, 1)}, str(tmp_path / "q.safetensors"))
    code = main(["index", "tune", str(tmp_path / "i.index"), "--queries",
                 str(tmp_path / "q.safetensors"), "--target", "0.9", "--json"])
    result = json.loads(capsys.readouterr().out)
    # Whether 0.9 is reached before IVF gets slower than exact depends on the load here.
    assert code == 0 and result["reached"] == (result["recall"] >= 0.9)
    loaded = Index.load(tmp_path / "i.index")
    assert loaded.faiss_options.nprobe == result["settings"]["nprobe"]
    assert loaded.faiss_options.tuned is not None
    assert loaded.faiss_options.tuned["recall"] == result["recall"]
    save_file({"other": clustered(3, 1)}, str(tmp_path / "bad.safetensors"))
    code = main(["index", "tune", str(tmp_path / "i.index"), "--queries",
                 str(tmp_path / "bad.safetensors")])
    assert code != 0 and "no 'embeddings' tensor" in capsys.readouterr().err
