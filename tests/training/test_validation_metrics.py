"""One metric, one meaning: training's validation R@k equals ``anymodal eval``'s and
``anymodal report``'s on the same model and rows, repeated items included."""

from __future__ import annotations

import json
import unittest.mock
from pathlib import Path

import numpy as np
import pytest
import torch

import anymodal
from anymodal.config import load_config
from anymodal.retrieval.evaluation import EmbeddedRows, default_tasks, evaluate_retrieval
from anymodal.retrieval.report import write_report
from anymodal.training import train
from anymodal.training.collapse import LossWatch, collapsed_modalities, mean_pairwise_cosine
from tests.conftest import vector_overrides


def _manifest(tmp_path: Path, name: str, rows: int, seed: int) -> Path:
    """Three views of 8 classes; view ``c`` is one file per class, repeated on every row of
    the class, as a caption such as "seven" is repeated on every row of digit 7."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(8, 32)).astype(np.float32)
    folder = tmp_path / name
    folder.mkdir()
    for label in range(8):
        np.save(folder / f"c{label}.npy", centres[label])
    lines = []
    for i in range(rows):
        label = i % 8
        for key in ("a", "b"):
            vector = centres[label] + 0.3 * rng.normal(size=32).astype(np.float32)
            np.save(folder / f"{key}{i}.npy", vector.astype(np.float32))
        lines.append({"id": f"r{i}", "a": f"a{i}.npy", "b": f"b{i}.npy", "c": f"c{label}.npy",
                      "label": label})
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


@pytest.mark.slow
def test_training_eval_and_report_give_the_same_numbers(tmp_path: Path) -> None:
    train_rows = _manifest(tmp_path, "train", 64, 1)
    val_rows = _manifest(tmp_path, "val", 40, 2)
    config = load_config(None, [
        *vector_overrides(tmp_path, "clip", modalities=3), "data.train.kind=manifest",
        f"data.train.path={train_rows}", "data.val.kind=manifest", f"data.val.path={val_rows}",
        "data.num_workers=0", "train.max_steps=30", "optim.lr=3e-3"])
    result = train(config)
    model = anymodal.load_model(tmp_path / "run" / "model")
    evaluated = evaluate_retrieval(model, val_rows)  # what `anymodal eval` runs
    report = write_report(tmp_path / "run").measures
    assert report["positives"] == "source"
    tasks = [t.name for t in default_tasks("abc")]
    assert set(evaluated) == set(tasks) == set(report["recall"])
    for task in tasks:
        for name in ("R@1", "R@5", "chance_R@1"):
            assert result.metrics[f"val/{task}/{name}"] == pytest.approx(
                evaluated[task][name], abs=1e-6), (task, name)
            assert report["recall"][task][name] == pytest.approx(
                evaluated[task][name], abs=1e-6), (task, name)
    # c repeats one item per class: a->c has 8 candidates (chance 1/8), not 40 rows
    # where the 4 copies of the right caption would tie and count against the query.
    assert evaluated["a->c"]["candidates"] == 8
    assert evaluated["a->c"]["chance_R@1"] == pytest.approx(1 / 8)
    assert evaluated["a->c"]["R@1"] > 0.5


def test_repeated_items_are_one_gallery_item() -> None:
    """The old loop ranked row i of c against every row's c: the identical copies of the
    right item tie with it and count against the query, so R@1 is 0 even for a perfect
    model (the 0.047 vs 0.766 disagreement of issue 15). By source, it is 1."""
    model = anymodal.MultiModalModel(load_config(None, vector_overrides(Path("/tmp"))))
    labels = torch.arange(12) % 3
    a = torch.nn.functional.normalize(torch.eye(16)[labels], dim=-1)
    rows = EmbeddedRows({"a": a, "b": a.clone()},
                        {"a": torch.ones(12, dtype=torch.bool),
                         "b": torch.ones(12, dtype=torch.bool)},
                        labels, {"b": [f"caption{int(x)}" for x in labels]})
    by_source = evaluate_retrieval(model, rows, "a->b", positives="source")["a->b"]
    assert by_source["R@1"] == 1.0 and by_source["candidates"] == 3
    distinct = EmbeddedRows({"a": a, "b": a.clone()},
                            {"a": torch.ones(12, dtype=torch.bool),
                             "b": torch.ones(12, dtype=torch.bool)}, labels)
    assert evaluate_retrieval(model, distinct, "a->b", positives="source")["a->b"]["R@1"] == 0.0


def test_collapse_measures() -> None:
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    assert abs(mean_pairwise_cosine(x)) < 0.1
    collapsed = torch.ones(64, 16) + 1e-3 * x
    assert mean_pairwise_cosine(collapsed) > 0.99
    found = collapsed_modalities({"audio": collapsed, "text": x},
                                 {"audio": torch.ones(64, dtype=torch.bool),
                                  "text": torch.ones(64, dtype=torch.bool)})
    assert list(found) == ["audio"]
    watch = LossWatch(batch=32, window=5)
    assert not any(watch.update(s, float(np.log(32)) + 0.01) for s in range(4))
    assert watch.update(5, float(np.log(32)))
    assert not LossWatch(batch=32, window=5).update(1, 1.0)


def test_a_collapsed_modality_is_named_with_the_step(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # b's head maps every item to nearly one point, as GRAM's audio did in issue 15.
    config = load_config(None, [*vector_overrides(tmp_path), "train.max_steps=2",
                                "train.eval_every=2"])
    from anymodal.model import MultiModalModel

    class OnePoint(torch.nn.Module):
        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return torch.ones(features.shape[0], 16) + 1e-3 * features[:, :16]

    real_init = MultiModalModel.__init__

    def init(self, cfg):  # type: ignore[no-untyped-def]
        real_init(self, cfg)
        self.heads["b"] = OnePoint()

    with unittest.mock.patch.object(MultiModalModel, "__init__", init):
        train(config)
    messages = [r.getMessage() for r in caplog.records if r.name == "anymodal.training"]
    assert any("modality 'b' has collapsed at step 2" in m for m in messages), messages
    assert not any("modality 'a'" in m for m in messages)
