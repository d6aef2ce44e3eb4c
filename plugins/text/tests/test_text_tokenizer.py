"""The byte tokenizer, the transform (truncation, crops) and collate (padding, masks)."""

from __future__ import annotations

import pytest
import torch

import anymodal
from anymodal import ConfigError
from anymodal_text.tokenizer import BOS_ID, EOS_ID, OFFSET, PAD_ID, VOCAB_SIZE, decode, encode


def test_encode_bytes_with_bos_eos() -> None:
    ids = encode("hé", max_length=16)
    assert ids.dtype == torch.long
    assert ids.tolist() == [BOS_ID, ord("h") + OFFSET, 0xC3 + OFFSET, 0xA9 + OFFSET, EOS_ID]
    assert int(ids.max()) < VOCAB_SIZE


@pytest.mark.parametrize("text", ["hello", "Привет, мир", "你好世界", "emoji 🙂 ok"])
def test_round_trip_any_script(text: str) -> None:
    assert decode(encode(text, max_length=512)) == text


def test_truncation_keeps_bos_eos_and_head() -> None:
    ids = encode("abcdefghij", max_length=6)
    assert ids.tolist() == [BOS_ID, *(ord(c) + OFFSET for c in "abcd"), EOS_ID]
    window = encode("abcdefghij", max_length=6, start=4)
    assert decode(window) == "efgh"
    assert decode(encode("abcdefghij", max_length=6, start=99)) == "ghij"  # clamped


def test_transform_eval_keeps_head_and_train_crops_randomly() -> None:
    text = anymodal.get_modality("text", max_length=10)
    raw = "0123456789abcdefghijklmnopqrstuvwxyz"
    assert decode(text.transform(raw, False)["input_ids"]) == "01234567"
    torch.manual_seed(0)
    windows = {decode(text.transform(raw, True)["input_ids"]) for _ in range(30)}
    assert len(windows) > 3 and all(len(w) == 8 and w in raw for w in windows)
    off = anymodal.get_modality("text", max_length=10, random_crop=False)
    assert decode(off.transform(raw, True)["input_ids"]) == "01234567"
    # A text that fits is never cropped, even in training.
    assert decode(text.transform("short", True)["input_ids"]) == "short"


def test_collate_pads_and_masks() -> None:
    text = anymodal.get_modality("text")
    items = [text.transform(t, False) for t in ["a", "abcd", "ab"]]
    batch = text.collate(items)
    assert batch["input_ids"].shape == (3, 6) and batch["attention_mask"].shape == (3, 6)
    assert batch["attention_mask"].dtype == torch.bool
    assert batch["attention_mask"].sum(1).tolist() == [3, 6, 4]
    assert batch["input_ids"][0, 3:].eq(PAD_ID).all()
    assert batch["input_ids"][batch["attention_mask"]].ne(PAD_ID).all()
    assert batch["text"] == ["a", "abcd", "ab"]


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="max_length=2"):
        anymodal.get_modality("text", max_length=2)
    with pytest.raises(ConfigError, match="num_classes=99"):
        anymodal.get_modality("text", num_classes=99)
    with pytest.raises(ConfigError, match="no param 'max_len'"):
        anymodal.get_modality("text", max_len=8)
