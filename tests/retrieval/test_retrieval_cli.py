"""The CLI: embed, index build|add|remove|info, search (one index or tuples), eval, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

import anymodal
from anymodal.cli import main
from anymodal.retrieval.evaluation import evaluate_retrieval
from anymodal.retrieval.index import Index
from anymodal.retrieval.search import search

from .conftest import write_manifest


@pytest.fixture
def saved(make_model: Any, tmp_path: Path) -> tuple[Any, Path, Path, list[dict[str, Any]]]:
    """An (untrained) clip model saved to a folder, and a 30-row manifest."""
    model = make_model("clip")
    model.save_pretrained(tmp_path / "run" / "model")
    rows = write_manifest(tmp_path / "data.jsonl", model, 30)
    return anymodal.load_model(tmp_path / "run" / "model"), tmp_path / "run" / "model", \
        tmp_path / "data.jsonl", rows


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_index_build_search_add_remove(saved: Any, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    model, model_dir, manifest, rows = saved
    index_dir = tmp_path / "c.index"
    code, out, _ = run(capsys, "index", "build", str(model_dir), "-m", "c", "--data",
                       str(manifest), "-o", str(index_dir), "--payload-columns", "label",
                       "--no-progress", "--json")
    assert code == 0 and json.loads(out)["rows"] == 30
    code, out, _ = run(capsys, "index", "info", str(index_dir), "--json")
    info = json.loads(out)
    assert info["modality"] == "c" and info["ids_sample"] == ["r0", "r1", "r2", "r3", "r4"]
    code, out, _ = run(capsys, "search", str(model_dir), str(index_dir), "-q",
                       f"a={rows[4]['a']}", "-q", f"b={rows[4]['b']}", "-k", "5", "--json")
    assert code == 0
    result = json.loads(out)
    want = search(model, {"a": rows[4]["a"], "b": rows[4]["b"]}, Index.load(index_dir), k=5)
    assert [h["id"] for h in result[0]["hits"]] == [h.id for h in want]
    assert result[0]["hits"][0]["payload"]["label"] == rows[int(want[0].id[1:])]["label"]
    # The table form names the hits too.
    code, out, _ = run(capsys, "search", str(model_dir), str(index_dir), "-q",
                       f"a={rows[4]['a']}", "-k", "3")
    assert code == 0 and "rank" in out and "r" in out
    # Batch queries from a manifest: one result list per row.
    code, out, _ = run(capsys, "search", str(model_dir), str(index_dir), "--queries",
                       str(manifest), "--query-columns", "a", "-k", "2", "--json")
    assert len(json.loads(out)) == 30
    extra = tmp_path / "extra.jsonl"
    extra.write_text("".join(json.dumps({**r, "id": f"x{i}"}) + "\n"
                             for i, r in enumerate(rows[:4])))
    code, out, _ = run(capsys, "index", "add", str(index_dir), str(model_dir), "--data",
                       str(extra), "--no-progress")
    assert code == 0 and len(Index.load(index_dir)) == 34
    code, out, _ = run(capsys, "index", "remove", str(index_dir), "x0", "r3")
    assert code == 0 and len(Index.load(index_dir)) == 32
    code, _, err = run(capsys, "index", "remove", str(index_dir), "x0")
    assert code == 2 and "x0" in err


def test_foreign_or_damaged_index_is_a_clean_error(saved: Any, make_model: Any, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, model_dir, manifest, rows = saved
    other = tmp_path / "other"
    make_model("clip", seed=5).save_pretrained(other)
    index_dir = tmp_path / "c.index"
    assert run(capsys, "index", "build", str(model_dir), "-m", "c", "--data", str(manifest),
               "-o", str(index_dir), "--no-progress")[0] == 0
    code, _, err = run(capsys, "search", str(other), str(index_dir), "-q", f"a={rows[0]['a']}")
    assert code == 2 and "c.index" in err and "fingerprint" in err
    (index_dir / "items.jsonl").write_text("tampered\n")
    code, _, err = run(capsys, "index", "info", str(index_dir))
    assert code == 2 and "items.jsonl" in err and "damaged" in err


def test_embed(saved: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, model_dir, _, rows = saved
    out_file = tmp_path / "emb.safetensors"
    # argparse takes the positionals in one run: the items follow the model.
    code, out, err = run(capsys, "embed", str(model_dir), rows[0]["a"], "1,2", rows[1]["a"],
                         "-m", "a", "-o", str(out_file), "--on-error", "skip",
                         "--no-progress", "--json")
    assert code == 0 and "skipped item 1" in err
    assert json.loads(out)["rows"] == 2
    with safe_open(str(out_file), "pt") as f:
        embeddings = f.get_tensor("embeddings")
        meta = f.metadata()
    assert json.loads(meta["ids"]) == ["0", "2"] and meta["modality"] == "a"
    want = model.embed("a", [rows[0]["a"], rows[1]["a"]], progress=False)
    assert torch.allclose(embeddings, want, atol=1e-6)


def test_eval_json_and_table(saved: Any, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    model, model_dir, manifest, _ = saved
    code, out, _ = run(capsys, "eval", str(model_dir), "--data", str(manifest), "--tasks",
                       "a->c,a+b->c", "--prototypes", "c", "--json")
    assert code == 0
    result = json.loads(out)
    want = evaluate_retrieval(model, manifest, "a->c,a+b->c")
    assert set(result["retrieval"]) == set(want)
    for task, metrics in want.items():
        assert result["retrieval"][task] == pytest.approx(metrics)
    assert set(result["zero_shot"]) == {"a", "b"}
    code, out, _ = run(capsys, "eval", str(model_dir), "--data", str(manifest), "--tasks",
                       "a->c")
    assert code == 0 and "R@1" in out and "MRR" in out and "mAP" in out
    code, _, err = run(capsys, "eval", str(model_dir), "--data", str(manifest), "--tasks",
                       "a->nothing")
    assert code == 2 and "not in the model" in err


def test_tuple_search_cli(make_model: Any, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model("symile")
    model.save_pretrained(tmp_path / "m")
    rows = write_manifest(tmp_path / "d.jsonl", model, 12)
    for key in ("a", "b"):
        assert run(capsys, "index", "build", str(tmp_path / "m"), "-m", key, "--data",
                   str(tmp_path / "d.jsonl"), "-o", str(tmp_path / key), "--no-progress")[0] == 0
    code, out, _ = run(capsys, "search", str(tmp_path / "m"), str(tmp_path / "a"),
                       str(tmp_path / "b"), "-q", f"c={rows[0]['c']}", "-k", "4", "--json")
    assert code == 0
    hits = json.loads(out)[0]["hits"]
    assert len(hits) == 4 and all(len(h["ids"]) == 2 for h in hits)
    assert hits[0]["score"] >= hits[-1]["score"]


def _fake_run(make_model: Any, run_dir: Path) -> None:
    make_model("gram").save_pretrained(run_dir / "model")
    records = [{"step": s, "train/loss": 3.0 / s} for s in range(1, 6)]
    records += [{"step": 5, "val/loss": 0.9, "val/a->b/R@1": 0.5}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _check_report(folder: Path) -> dict[str, Any]:
    png = (folder / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    page = (folder / "report.html").read_text()
    assert "data:image/png;base64," in page and "uniformity" in page
    return json.loads((folder / "report.json").read_text())


def test_report(make_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_run(make_model, tmp_path / "run")
    code, out, _ = run(capsys, "report", str(tmp_path / "run"), "-n", "64")
    assert code == 0 and "alignment" in out and "uniformity" in out
    measures = _check_report(tmp_path / "run" / "report")
    assert set(measures["uniformity"]) == {"a", "b", "c"}
    assert set(measures["alignment"]) == {"a-b", "a-c", "b-c"}
    # every pair plus all-others -> each, as eval and training's validation rank them
    assert set(measures["recall"]) == {"a->b", "a->c", "b->a", "b->c", "c->a", "c->b",
                                       "b+c->a", "a+c->b", "a+b->c"}
    assert measures["positives"] in ("label", "source")
    assert all(-4.1 < v <= 0 for v in measures["uniformity"].values())
    assert all(0 <= v <= 4 for v in measures["alignment"].values())
    code, _, err = run(capsys, "report", str(tmp_path / "nothing"))
    assert code == 2 and "no trained model" in err


@pytest.mark.slow
def test_report_on_a_manifest(make_model: Any, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    _fake_run(make_model, tmp_path / "run")
    manifest = tmp_path / "d.jsonl"
    write_manifest(manifest, anymodal.load_model(tmp_path / "run" / "model"), 20)
    code, out, _ = run(capsys, "report", str(tmp_path / "run"), "--data", str(manifest),
                       "-o", str(tmp_path / "r2"), "--json")
    assert code == 0 and json.loads(out)["rows"] == 20
    _check_report(tmp_path / "r2")


@pytest.mark.slow
def test_report_of_a_real_training_run(trained_models: Any,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = trained_models("clip")
    assert run(capsys, "report", str(run_dir), "-n", "64")[0] == 0
    _check_report(run_dir / "report")


@pytest.mark.slow  # a fresh interpreter importing torch: a few seconds
def test_parser_stays_light() -> None:
    code = ("import sys; from anymodal.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'matplotlib', 'faiss', 'safetensors', "
            "'anymodal.retrieval.index') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
