"""Index builds across processes equal the one-process build, and resume from kept shards."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import anymodal
from anymodal.retrieval import distributed
from anymodal.retrieval.distributed import build_index_distributed
from anymodal.retrieval.index import Index
from tests.conftest import PYTHON, REPO

from .conftest import synth

WORKER = Path(__file__).with_name("distributed_worker.py")
IVF = {"backend": "ivf", "nlist": 4, "nprobe": 2}


def assert_same_index(got: Index, want: Index, queries: torch.Tensor) -> None:
    """Same ids, payloads, rows (bit for bit) and search results, exact and FAISS."""
    assert got.ids == want.ids and got.payloads == want.payloads
    assert torch.equal(got.embeddings, want.embeddings)
    for k in (1, 7):
        assert torch.equal(got.exact_topk(lambda c: queries @ c.T, k)[1],
                           want.exact_topk(lambda c: queries @ c.T, k)[1])
        if want.backend != "exact":
            assert torch.equal(got.faiss_topk(queries, k)[1], want.faiss_topk(queries, k)[1])


def test_one_process_build_equals_index_build(make_model: Any, tmp_path: Path) -> None:
    model = make_model()
    items = synth(model, "c", 70, 0)  # 70 rows: the last shard is short
    ids = [f"r{i}" for i in range(70)]
    got = build_index_distributed(model, "c", items, tmp_path / "d.index", ids, batch_size=8,
                                  shard_size=16, progress=False, **IVF)
    want = Index.build(model, "c", items, ids, batch_size=8, progress=False, **IVF)
    assert got is not None and not (tmp_path / "d.index.shards").exists()
    queries = torch.nn.functional.normalize(torch.randn(5, model.embed_dim), dim=-1)
    assert_same_index(got, want, queries)
    assert_same_index(Index.load(tmp_path / "d.index", model=model), want, queries)


def test_interrupted_build_resumes_from_kept_shards(make_model: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model()
    items = synth(model, "c", 64, 1)
    out, work = tmp_path / "r.index", tmp_path / "work"
    embedded: list[int] = []
    original = distributed._embed_shard

    def counting(*args: Any) -> None:
        embedded.append(args[2])
        original(*args)

    monkeypatch.setattr(distributed, "_embed_shard", counting)
    build_index_distributed(model, "c", items, out, work_dir=work, batch_size=8,
                            shard_size=16, progress=False, keep_shards=True)
    assert embedded == [0, 1, 2, 3]
    # An interruption: shard 1 never written, shard 2 written by another model, shard 3
    # a half-written file; shard 0 intact.
    (work / "shard-00001.safetensors").unlink()
    tensors = load_file(work / "shard-00002.safetensors")
    save_file(tensors, work / "shard-00002.safetensors",
              metadata={"fingerprint": "another", "failures": "[]"})
    data = (work / "shard-00003.safetensors").read_bytes()
    (work / "shard-00003.safetensors").write_bytes(data[: len(data) // 2])
    embedded.clear()
    got = build_index_distributed(model, "c", items, out, work_dir=work, batch_size=8,
                                  shard_size=16, progress=False)
    assert embedded == [1, 2, 3] and not work.exists()
    want = Index.build(model, "c", items, batch_size=8, progress=False)
    assert got is not None
    assert_same_index(got, want, torch.randn(3, model.embed_dim))


def test_skipped_items_are_reported_with_their_corpus_position(make_model: Any,
                                                               tmp_path: Path) -> None:
    model = make_model()
    items: list[Any] = list(synth(model, "c", 40, 2))
    items[21] = "1,2,3"  # the wrong dimension, in the second shard
    with pytest.raises(anymodal.DataError, match="items 16-31"):
        build_index_distributed(model, "c", items, tmp_path / "x", batch_size=8,
                                shard_size=16, progress=False)
    failures: list[tuple[int, str]] = []
    got = build_index_distributed(model, "c", items, tmp_path / "y", batch_size=8,
                                  shard_size=16, progress=False, on_error="skip",
                                  failures=failures)
    want_failures: list[tuple[int, str]] = []
    want = Index.build(model, "c", items, batch_size=8, progress=False, on_error="skip",
                       failures=want_failures)
    assert [p for p, _ in failures] == [p for p, _ in want_failures] == [21]
    assert got is not None and "21" not in got.ids
    assert_same_index(got, want, torch.randn(2, model.embed_dim))


def test_bad_arguments_are_config_errors(make_model: Any, tmp_path: Path) -> None:
    model = make_model()
    items = synth(model, "c", 8, 0)
    with pytest.raises(anymodal.ConfigError, match="multiple of the batch size 8"):
        build_index_distributed(model, "c", items, tmp_path / "x", batch_size=8, shard_size=12)
    with pytest.raises(anymodal.ConfigError, match="no modality 'zz'"):
        build_index_distributed(model, "zz", items, tmp_path / "x")
    with pytest.raises(anymodal.ConfigError, match="backend"):
        build_index_distributed(model, "c", items, tmp_path / "x", backend="annoy")


@pytest.mark.slow
def test_two_processes_build_the_one_process_index(make_model: Any, tmp_path: Path) -> None:
    model = make_model()
    model.save_pretrained(tmp_path / "model")
    model = anymodal.load_model(tmp_path / "model")
    items = synth(model, "c", 90, 3)  # 6 shards of 16 (the last one 10): 3 per process
    torch.save(items, tmp_path / "items.pt")
    out = tmp_path / "two.index"
    env = {**os.environ, "ANYMODAL_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    launched = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "--main_process_port", "0", str(WORKER), str(tmp_path / "model"),
         str(tmp_path / "items.pt"), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-4000:]
    # Each process embedded its own shards (s mod 2), in order.
    assert json.loads((tmp_path / "two.index.rank0.json").read_text()) == [0, 2, 4]
    assert json.loads((tmp_path / "two.index.rank1.json").read_text()) == [1, 3, 5]
    want = Index.build(model, "c", items, [f"r{i}" for i in range(90)], batch_size=8,
                       progress=False, **IVF)
    queries = torch.nn.functional.normalize(torch.randn(6, model.embed_dim), dim=-1)
    assert_same_index(Index.load(out, model=model), want, queries)


def test_cli_build_in_shards_equals_one_process(make_model: Any, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``anymodal index build --shards DIR``: the path ``accelerate launch`` takes."""
    from anymodal.cli import main

    from .conftest import write_manifest

    model = make_model()
    model.save_pretrained(tmp_path / "model")
    model = anymodal.load_model(tmp_path / "model")
    rows = write_manifest(tmp_path / "data.jsonl", model, 40)
    code = main(["index", "build", str(tmp_path / "model"), "-m", "c", "--data",
                 str(tmp_path / "data.jsonl"), "-o", str(tmp_path / "cli.index"),
                 "--batch-size", "8", "--shards", str(tmp_path / "work"), "--shard-size", "16",
                 "--backend", "ivf", "--nlist", "4", "--nprobe", "2", "--no-progress", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["rows"] == 40
    want = Index.build(model, "c", [r["c"] for r in rows], [r["id"] for r in rows],
                       batch_size=8, progress=False, **IVF)
    queries = torch.nn.functional.normalize(torch.randn(4, model.embed_dim), dim=-1)
    assert_same_index(Index.load(tmp_path / "cli.index", model=model), want, queries)
    assert not (tmp_path / "work").exists()
