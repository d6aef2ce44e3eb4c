"""``anymodal eval`` without --tasks evaluates every pair plus all-others->each; its table
puts chance beside R@1, names the positives rule and fits 80 columns in a pipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from anymodal.cli import main
from anymodal.cli.output import PLAIN_WIDTH
from tests.retrieval.conftest import vector_config, write_manifest


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Path]:
    """An untrained 3-modality clip model saved to a folder, and a 24-row manifest."""
    from anymodal.model import MultiModalModel

    torch.manual_seed(0)
    model = MultiModalModel(vector_config("clip")).eval()
    model.save_pretrained(tmp_path / "model")
    write_manifest(tmp_path / "data.jsonl", model, 24)
    return tmp_path / "model", tmp_path / "data.jsonl"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_defaults_to_every_pair_and_all_others(saved: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, manifest = saved
    code, out, _ = _run(capsys, "eval", str(model_dir), "--data", str(manifest), "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result["retrieval"]) == {"a->b", "a->c", "b->a", "b->c", "c->a", "c->b",
                                        "b+c->a", "a+c->b", "a+b->c"}
    assert result["positives"] == "source"
    for metrics in result["retrieval"].values():
        assert metrics["chance_R@1"] == pytest.approx(1 / 24)


def test_eval_table_shows_chance_and_the_rule_within_80_columns(
        saved: Any, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, manifest = saved
    code, out, _ = _run(capsys, "eval", str(model_dir), "--data", str(manifest),
                        "--positives", "label")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= PLAIN_WIDTH
    header = next(line for line in lines if line.startswith("task"))
    assert header.index("R@1") < header.index("chance") < header.index("R@5")
    assert "positives: label" in out
    assert any(line.startswith("a+b->c ") for line in lines)  # names whole


def test_eval_needs_two_modalities_in_the_data(saved: Any, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, manifest = saved
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    only_a = tmp_path / "a.jsonl"
    only_a.write_text("".join(json.dumps({"id": r["id"], "a": r["a"]}) + "\n" for r in rows))
    code, _, err = _run(capsys, "eval", str(model_dir), "--data", str(only_a))
    assert code == 2 and "retrieval needs two" in err and "['a']" in err


def test_report_shows_recall_beside_chance_and_names_the_rule(
        saved: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, manifest = saved
    code, out, _ = _run(capsys, "report", str(model_dir), "--data", str(manifest), "-o",
                        str(tmp_path / "report"))
    assert code == 0
    assert "chance R@1" in out and "positives: source" in out
    tables = out[:out.index("wrote ")]  # the file paths after the tables are what they are
    assert max(len(line) for line in tables.splitlines()) <= PLAIN_WIDTH
    code, out, _ = _run(capsys, "report", str(model_dir), "-n", "32", "-o",
                        str(tmp_path / "report2"), "--json")
    measures = json.loads(out)
    assert measures["positives"] == "label"  # the synthetic sample pairs rows by class
    assert all(0 < m["chance_R@1"] < 1 for m in measures["recall"].values())
