"""The text modality as a whole: registration, contract, synthetic sentences."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

import anymodal
from anymodal.testing import check_modality, check_registered
from anymodal_text.synthetic import COLOURS, MAX_CLASSES, SHAPES, class_name, make_sentences


def test_registered_through_the_entry_point() -> None:
    check_registered("text", "anymodal-text", ["text_transformer_tiny", "text_minilm"])


def test_contract(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xff\xfe")
    blank = tmp_path / "blank.txt"
    blank.write_text("   ", encoding="utf-8")
    check_modality(anymodal.get_modality("text"),
                   bad_sources=[bad, str(bad), blank, tmp_path / "missing.txt", "", "  ",
                                b"\xff"])


def test_synthetic_labels_name_their_class() -> None:
    labels = torch.arange(MAX_CLASSES)
    for seed in range(3):
        sentences, out = make_sentences(MAX_CLASSES, torch.Generator().manual_seed(seed),
                                        labels, num_classes=MAX_CLASSES)
        assert out.tolist() == labels.tolist()
        for label, sentence in zip(labels.tolist(), sentences):
            colour, shape = class_name(label).split()
            assert colour == COLOURS[label % 6] and shape == SHAPES[label // 6]
            # Only this class's words appear: the plain names of the other colours are absent.
            others = [c for c in COLOURS if c != colour]
            assert not any(f" {c} " in f" {sentence} " for c in others), sentence


def test_synthesize_uses_labels_modulo_classes_and_is_deterministic() -> None:
    text = anymodal.get_modality("text", num_classes=4)
    labels = torch.tensor([0, 4, 1, 5])
    a = text.synthesize(4, torch.Generator().manual_seed(7), labels)
    b = text.synthesize(4, torch.Generator().manual_seed(7), labels)
    assert [x["text"] for x in a] == [x["text"] for x in b]
    _, reduced = make_sentences(4, torch.Generator().manual_seed(7), labels, num_classes=4)
    assert reduced.tolist() == [0, 0, 1, 1]
    c = text.synthesize(4, torch.Generator().manual_seed(8), labels)
    assert [x["text"] for x in a] != [x["text"] for x in c]
    for item in a:
        assert item["input_ids"][0] == 1 and item["input_ids"][-1] == 2


def test_load_then_transform_from_file(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text("Grüße aus Köln", encoding="utf-8")
    text = anymodal.get_modality("text")
    item = text.transform(text.load(path), False)
    assert item["text"] == "Grüße aus Köln"
    assert len(item["input_ids"]) == len("Grüße aus Köln".encode()) + 2


def test_spec_pickles_for_spawned_workers() -> None:
    text = anymodal.get_modality("text", max_length=32)
    clone = pickle.loads(pickle.dumps(text))
    assert clone.transform("abc", False)["input_ids"].tolist() == \
        text.transform("abc", False)["input_ids"].tolist()
