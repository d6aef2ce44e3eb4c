"""Tests of ``examples/compare_objectives.py``: variants, records, chance levels, the table.

Its configs on the real modalities and the ``--quick`` run on a digits build need the
plugins: ``tests/integration/test_compare_objectives.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.examples.conftest import example_module


@pytest.fixture(scope="module")
def study() -> Iterator[ModuleType]:
    with example_module("compare_objectives.py") as module:
        yield module


def test_variants_run_each_objective_with_and_without_subsets(study: ModuleType) -> None:
    both = study.variants(["gram", "clip (all pairs)"], "both")
    assert [(run.label, run.subset_p) for run in both] == [
        ("clip (all pairs)", 0.0), ("clip (all pairs) +subsets", study.SUBSET_P),
        ("gram", 0.0), ("gram +subsets", study.SUBSET_P)]
    assert [v.label for v in study.variants(["gram"], "on")] == ["gram +subsets"]
    assert [v.subset_p for v in study.variants(["gram"], "off")] == [0.0]
    assert all(v.batch_size is None and v.micro_batch is None for v in both)


def test_records_resume_and_keep_budgets_apart(study: ModuleType, tmp_path: Path) -> None:
    """Finished runs are appended one line each; a study reads back only its own budget's
    and tabulates them (seeds as finished) without training again."""
    records = tmp_path / "runs.jsonl"
    budget, other = study.Budget(steps=60), study.Budget(steps=200)
    recall = {task: 0.5 for task in study.TASKS}
    for seed, label, used in ((0, "gram", budget), (1, "gram", budget), (0, "gram", other),
                              (0, "siglip", budget)):
        study.append_record(records, {"label": label, "seed": seed, "recall": recall,
                                      "seconds": 2.0 + seed, "budget": study.budget_key(used)})
    assert len(records.read_text().splitlines()) == 4
    assert len(study.load_records(records, budget)) == 3
    assert len(study.load_records(records, other)) == 1
    assert study.load_records(tmp_path / "none.jsonl", budget) == []
    data = tmp_path / "data"
    data.mkdir()
    _write_manifest(data / "train.jsonl", [{"label": 0}])
    _write_manifest(data / "test.jsonl", [
        {"label": k % 2, "image": f"{k}.png", "audio": f"{k}.wav", "text": f"t{k}"}
        for k in range(4)])
    result = study.run_study(data, 3, budget, ["gram", "siglip", "dcl"], subsets="off",
                             records=records, train=False)
    assert result.labels == ["siglip", "gram"]  # in OBJECTIVES order; dcl never ran
    assert result.recall["gram"].shape == (len(study.TASKS), 2)
    assert list(result.seconds["gram"]) == [2.0, 3.0]
    assert "| gram | 0.500 ± 0.000" in study.format_table(result)


def test_kind_summary_compares_subset_training(study: ModuleType) -> None:
    tasks = ["a->b", "a+c->b"]
    result = study.StudyResult(labels=["x", "x +subsets"], tasks=tasks,
                               chance={t: 0.1 for t in tasks})
    result.recall = {"x": np.array([[0.2, 0.4], [0.5, 0.5]]),
                     "x +subsets": np.array([[0.6, 0.6], [0.4, 0.4]])}
    lines = study.kind_summary(result)
    assert lines[0] == ("- mean R@1 by query kind (one-modality chance 0.100, two-modality "
                        "chance 0.100): `x` 0.300 / 0.500; `x +subsets` 0.600 / 0.400.")
    assert lines[1] == ("- subset-consistent training, `x`: one-modality +0.300, "
                        "two-modality -0.100.")


def _write_manifest(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_chance_recall_counts_distinct_items_by_label(study: ModuleType,
                                                      tmp_path: Path) -> None:
    # Texts repeat (one caption per class here): the gallery of ->text has 2 items.
    rows = [{"label": 0, "image": "a.png", "audio": "a.wav", "text": "zero"},
            {"label": 0, "image": "b.png", "audio": "b.wav", "text": "zero"},
            {"label": 1, "image": "c.png", "audio": "c.wav", "text": "one"},
            {"label": 2, "image": "d.png", "audio": None, "text": "two"}]
    manifest = tmp_path / "test.jsonl"
    _write_manifest(manifest, rows)
    # image->text: 4 queries, gallery {zero: 0, one: 1, two: 2}; each query 1/3.
    assert study.chance_recall(manifest, "image->text") == (pytest.approx(1 / 3), 4)
    # audio->image: 3 queries (d has no audio), gallery of 4 images: 2/4, 2/4, 1/4.
    assert study.chance_recall(manifest, "audio->image") == (pytest.approx(5 / 12), 3)
    # audio+text->image: the same three rows have both.
    chance, queries = study.chance_recall(manifest, "audio+text->image")
    assert queries == 3 and chance == pytest.approx(5 / 12)


def test_table_has_a_row_per_objective_and_the_chance_row(study: ModuleType) -> None:
    result = study.StudyResult(labels=["a", "b"], tasks=["x->y", "y->x"],
                               chance={"x->y": 0.1, "y->x": 0.25})
    result.recall = {"a": np.array([[0.5, 0.7], [0.2, 0.2]]), "b": np.zeros((2, 2))}
    result.seconds = {"a": np.array([3.0, 5.0]), "b": np.array([1.0, 1.0])}
    lines = study.format_table(result).splitlines()
    assert lines[0] == "| objective | x->y | y->x | seeds | train s / run |"
    assert lines[2] == "| a | 0.600 ± 0.100 | 0.200 ± 0.000 | 2 | 4.0 ± 1.0 |"
    assert lines[3].startswith("| b | 0.000 ± 0.000")
    assert lines[4] == "| *chance* | 0.100 | 0.250 | | |"


def test_summary_names_the_best_and_the_gain_of_the_pair_query(study: ModuleType) -> None:
    tasks = ["audio->image", "text->image", "audio+text->image"]
    result = study.StudyResult(labels=["pairwise", "product"], tasks=tasks,
                               chance={t: 0.1 for t in tasks})
    result.recall = {"pairwise": np.array([[0.2, 0.2], [0.6, 0.6], [0.5, 0.5]]),
                     "product": np.array([[0.3, 0.3], [0.5, 0.5], [0.8, 0.8]])}
    lines = study.summarise(result)
    assert lines[0] == ("- `audio->image`: best `product` 0.300, worst `pairwise` 0.200, "
                        "chance 0.100.")
    assert lines[1].startswith("- `text->image`: best `pairwise` 0.600")
    assert lines[3].endswith("`pairwise` -0.100, `product` +0.300.")
