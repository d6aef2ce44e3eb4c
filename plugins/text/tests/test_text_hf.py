"""``text_hf``: a tiny random BERT saved to a folder, loaded offline, pooled, trained, reloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.testing import check_encoder, check_trains_and_reloads

WORDS = ["a", "the", "red", "green", "blue", "circle", "square", "ring", "small", "big"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT and its WordPiece tokenizer, saved to a folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *"0123456789",
             *[f"##{c}" for c in letters]]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


def test_contract_from_a_local_folder(tiny_bert: Path) -> None:
    spec = anymodal.get_encoder_spec("text_hf")
    check_encoder(spec, {"model": str(tiny_bert)})
    check_encoder(spec, {"model": str(tiny_bert), "pooling": "cls", "layer": "encoder.layer.0"})


def test_pooling_and_layer_choices(tiny_bert: Path) -> None:
    text = anymodal.get_modality("text")
    sentences = ["a red circle", "the big blue ring"]
    batch = text.collate([text.transform(s, False) for s in sentences])
    outputs = {}
    choices = [("mean", None), ("cls", None), ("pooler", None), ("mean", "encoder.layer.0")]
    for pooling, layer in choices:
        encoder = anymodal.create_encoder("text_hf", model=str(tiny_bert), pooling=pooling,
                                          layer=layer).eval()
        with torch.no_grad():
            outputs[pooling, layer] = encoder(batch)
        assert outputs[pooling, layer].shape == (2, 32)
    keys = list(outputs)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not torch.allclose(outputs[a], outputs[b]), f"{a} and {b} agree"


def test_loading_errors_name_what_to_fix(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(anymodal.ConfigError, match="does not exist"):
        anymodal.create_encoder("text_hf", model=str(tmp_path / "missing"))
    with pytest.raises(anymodal.ConfigError, match="cannot load AutoModel from folder"):
        anymodal.create_encoder("text_hf", model=str(tmp_path))
    with pytest.raises(anymodal.ConfigError, match="give 'model'"):
        anymodal.create_encoder("text_hf")
    with pytest.raises(anymodal.ConfigError, match=r"no layer .encoder.layers.0.*encoder.layer.0"):
        anymodal.create_encoder("text_hf", model=str(tiny_bert), layer="encoder.layers.0")
    with pytest.raises(anymodal.ConfigError, match="pooling='max'"):
        anymodal.create_encoder("text_hf", model=str(tiny_bert), pooling="max")


def test_frozen_tower_has_no_trainable_weight(tiny_bert: Path) -> None:
    encoder = anymodal.create_encoder("text_hf", model=str(tiny_bert), freeze=True)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.model.training


@pytest.mark.parametrize("freeze", [False, True])
def test_trains_saves_and_reloads_bit_identically(tiny_bert: Path, tmp_path: Path,
                                                  freeze: bool) -> None:
    check_trains_and_reloads({
        "text": {"encoder": "text_hf", "params": {"model": str(tiny_bert), "freeze": freeze}},
        "v": {"modality": "vector"},
    }, tmp_path / "model")


def test_lora_on_the_pretrained_tower_trains_only_adapters(tiny_bert: Path,
                                                           tmp_path: Path) -> None:
    lora = {"r": 4, "alpha": 8, "target_modules": ["query", "value"]}
    model = check_trains_and_reloads({
        "text": {"encoder": "text_hf", "params": {"model": str(tiny_bert)}, "lora": lora},
        "v": {"modality": "vector"},
    }, tmp_path / "model")
    trainable = [n for n, p in model.encoders["text"].named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {"query", "value"}
    assert (tmp_path / "model" / "adapters.safetensors").is_file()
