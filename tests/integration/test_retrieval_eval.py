"""Zero-shot evaluation with class prompts embedded by the text plugin.

(Moved from ``tests/retrieval/test_retrieval_eval.py``, which runs without plugins.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.retrieval.evaluation import read_classes, zero_shot
from anymodal.retrieval.metrics import zero_shot_accuracy
from tests.retrieval.conftest import synth
from tests.retrieval.test_retrieval_eval import vec


def test_zero_shot_with_class_prompts(tmp_path: Path) -> None:
    from anymodal.config import load_config
    from anymodal.model import MultiModalModel

    torch.manual_seed(0)
    config = load_config(None, {"modalities": {
        "a": {"modality": "vector", "options": {"view_seed": 1}},
        "text": {"params": {"width": 32, "depth": 1, "heads": 2}}},
        "model": {"embed_dim": 16}})
    model = MultiModalModel(config).eval()
    names = ["red circle", "blue square", "green star"]
    (tmp_path / "classes.txt").write_text("# shapes\n" + "\n".join(names) + "\n\n")
    assert read_classes(tmp_path / "classes.txt") == names
    labels = [0, 1, 2, 1, "green star"]
    a = synth(model, "a", len(labels), 0)
    rows = [{"a": vec(a[i]), "label": labels[i]} for i in range(len(labels))]
    manifest = tmp_path / "zs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = zero_shot(model, manifest, classes=names, template="a photo of a {}")
    assert set(got) == {"a"}  # text is the class modality, not classified
    prompts = model.embed("text", [f"a photo of a {n}" for n in names], progress=False)
    scores = model.score({"a": model.embed("a", a, progress=False)}, prompts)
    want = zero_shot_accuracy(scores, torch.tensor([0, 1, 2, 1, 2]), (1, 5))
    assert got["a"]["top1"] == pytest.approx(want[1]) and got["a"]["top5"] == 1.0
    with pytest.raises(anymodal.ConfigError, match="must contain"):
        zero_shot(model, manifest, classes=names, template="no slot")
