"""Evaluation on manifests: tasks, several positives, zero-shot, checked against direct sums."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import anymodal
from anymodal.retrieval.evaluation import (
    EmbeddedManifest,
    Task,
    evaluate_retrieval,
    parse_tasks,
    zero_shot,
)
from anymodal.retrieval.metrics import retrieval_metrics, zero_shot_accuracy

from .conftest import synth


def vec(x: torch.Tensor) -> str:
    return ",".join(f"{v:.6f}" for v in x.tolist())


def test_parse_tasks() -> None:
    tasks = parse_tasks("a->c, a+b->c", ["a", "b", "c"])
    assert tasks == [Task(("a",), "c"), Task(("a", "b"), "c")]
    assert tasks[1].name == "a+b->c"
    for bad, match in (("a-c", "must look like"), ("a->", "must look like"),
                       ("a+a->c", "must look like"), ("a->z", "not in the model"), ("", "no")):
        with pytest.raises(anymodal.ConfigError, match=match):
            parse_tasks(bad, ["a", "b", "c"])


@pytest.fixture
def captions(make_model: Any, tmp_path: Path) -> tuple[Any, Path, dict[str, Any]]:
    """12 'clips' (a, b), each with two 'captions' (c): 24 rows, the clip repeated."""
    model = make_model("clip")
    labels = torch.arange(12) % 4
    a, b = synth(model, "a", 12, 1, labels), synth(model, "b", 12, 2, labels)
    c = synth(model, "c", 24, 3, labels.repeat_interleave(2))
    rows = [{"id": f"r{i}", "a": vec(a[i // 2]), "b": vec(b[i // 2]), "c": vec(c[i]),
             "label": int(labels[i // 2])} for i in range(24)]
    rows.append({"id": "lonely", "c": vec(synth(model, "c", 1, 4)[0]), "label": 0})
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model, path, {"a": a, "b": b, "c": c, "labels": labels}


def test_several_positives_per_query(captions: Any) -> None:
    model, path, raw = captions
    results = evaluate_retrieval(model, path, "a->c,c->a,a+b->c", ks=(1, 5, 10))
    ea = model.embed("a", raw["a"], progress=False)
    eb = model.embed("b", raw["b"], progress=False)
    ec = model.embed("c", raw["c"], progress=False)
    lonely = model.embed("c", [torch.tensor([float(x) for x in json.loads(
        path.read_text().splitlines()[-1])["c"].split(",")])], progress=False)
    gallery = torch.cat([ec, lonely])  # the row without a clip is still a candidate
    # a->c: each clip has its two captions as positives.
    positives = torch.zeros(12, 25, dtype=torch.bool)
    for i in range(24):
        positives[i // 2, i] = True
    chance = float(positives.float().mean(dim=1).mean())  # positives / gallery, per query
    want = retrieval_metrics(model.score({"a": ea}, gallery), positives)
    assert results["a->c"] == pytest.approx({**want, "chance_R@1": chance})
    assert results["a->c"]["queries"] == 12 and results["a->c"]["candidates"] == 25
    want = retrieval_metrics(model.score({"a": ea, "b": eb}, gallery), positives)
    assert results["a+b->c"] == pytest.approx({**want, "chance_R@1": chance})
    # c->a: one clip per caption, the clip gallery has 12 distinct items.
    positives = torch.zeros(24, 12, dtype=torch.bool)
    positives[torch.arange(24), torch.arange(24) // 2] = True
    want = retrieval_metrics(model.score({"c": ec}, ea), positives)
    assert results["c->a"] == pytest.approx({**want, "chance_R@1": 1 / 12})


def test_label_positives(captions: Any) -> None:
    model, path, raw = captions
    got = evaluate_retrieval(model, path, [Task(("c",), "a")], positives="label")["c->a"]
    ea = model.embed("a", raw["a"], progress=False)
    ec = model.embed("c", raw["c"], progress=False)
    labels = raw["labels"]
    positives = labels.repeat_interleave(2)[:, None] == labels[None, :]
    want = retrieval_metrics(model.score({"c": ec}, ea), positives)
    chance = float(positives.float().mean(dim=1).mean())
    assert got == pytest.approx({**want, "chance_R@1": chance})


def test_zero_shot_with_prototypes(captions: Any) -> None:
    model, path, raw = captions
    got = zero_shot(model, path, prototypes="c", modalities=["a"])
    ec = model.embed("c", raw["c"], progress=False)
    ea = model.embed("a", raw["a"], progress=False)
    labels = raw["labels"]
    # The lonely row (label 0) is a prototype item too.
    lonely = model.embed("c", [torch.tensor([float(x) for x in json.loads(
        path.read_text().splitlines()[-1])["c"].split(",")])], progress=False)
    items = torch.cat([ec, lonely])
    item_labels = torch.cat([labels.repeat_interleave(2), torch.tensor([0])])
    protos = torch.stack([items[item_labels == k].mean(0) for k in range(4)])
    scores = model.score({"a": ea}, torch.nn.functional.normalize(protos, dim=-1))
    want = zero_shot_accuracy(scores, labels, (1, 5))
    assert got["a"]["top1"] == pytest.approx(want[1]) and got["a"]["top5"] == 1.0
    assert got["a"]["items"] == 12 and got["a"]["classes"] == 4


def test_bad_items_are_skipped_and_reported(captions: Any, tmp_path: Path) -> None:
    model, path, _ = captions
    lines = path.read_text().splitlines()
    row = json.loads(lines[0])
    row["c"] = "1,2,3"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    data = EmbeddedManifest(model, bad)
    results = evaluate_retrieval(model, data, "a->c")
    assert results["a->c"]["candidates"] == 24
    assert len(data.failures) == 1 and data.failures[0]["modality"] == "c"
    with pytest.raises(anymodal.DataError, match=r"bad\.jsonl"):
        evaluate_retrieval(model, EmbeddedManifest(model, bad, on_error="raise"), "a->c")
    only_c = tmp_path / "only_c.jsonl"
    only_c.write_text(lines[-1] + "\n")
    with pytest.raises(anymodal.DataError, match="no row has every modality"):
        evaluate_retrieval(model, only_c, "a->c")
