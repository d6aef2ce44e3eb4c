"""LoRA adapters and partial freezing from a recipe (anymodal.model.lora)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import anymodal
from anymodal.model.lora import ADAPTERS_FILE, merge_lora
from anymodal.testing import check_trains_and_reloads, synthetic_batch
from anymodal.training.optim import build_optimizer

LORA = {"r": 4, "alpha": 8, "target_modules": ["net.0", "net.3"]}


def _model(modalities: dict) -> anymodal.MultiModalModel:
    torch.manual_seed(0)
    config = anymodal.load_config(None, {"modalities": modalities, "model": {"embed_dim": 8}})
    return anymodal.MultiModalModel(config)


def test_only_adapters_of_the_encoder_reach_the_optimiser() -> None:
    model = _model({"a": {"modality": "vector", "lora": LORA}, "b": {"modality": "vector"}})
    optimizer = build_optimizer(model, model.config)
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    encoder_a = dict(model.encoders["a"].named_parameters())
    reached = sorted(name for name, p in encoder_a.items() if id(p) in optimised)
    assert reached and all("lora_" in name for name in reached)
    assert {n.split(".lora_")[0] for n in reached} == {"net.0", "net.3"}
    assert all(not p.requires_grad for n, p in encoder_a.items() if "lora_" not in n)
    assert all(id(p) in optimised for p in model.heads["a"].parameters())
    assert all(id(p) in optimised for p in model.encoders["b"].parameters())
    assert "a" in model.adapted and "a" not in model.frozen


def test_lora_trains_saves_adapters_and_reloads(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    again = check_trains_and_reloads({"a": {"modality": "vector", "lora": LORA},
                                      "b": {"modality": "vector"}}, folder)
    adapters = load_file(str(folder / ADAPTERS_FILE))
    assert adapters and all("lora_" in name for name in adapters)
    state = again.state_dict()
    for name, tensor in adapters.items():
        assert torch.equal(state[name], tensor)


def test_merged_model_gives_the_same_embeddings_without_adapters(tmp_path: Path) -> None:
    model = _model({"a": {"modality": "vector", "lora": LORA}, "b": {"modality": "vector"}})
    with torch.no_grad():  # move the adapters away from their zero start
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    model.eval()
    batch = {"a": synthetic_batch(model.modalities["a"], 5)}
    with torch.no_grad():
        before = model.embed_batch(batch)["a"]
        assert merge_lora(model) == 2
        after = model.embed_batch(batch)["a"]
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5)
    assert not any("lora_" in name for name in model.state_dict())
    model.save_pretrained(tmp_path / "merged")
    assert not (tmp_path / "merged" / ADAPTERS_FILE).exists()
    plain = anymodal.load_model(tmp_path / "merged").eval()
    assert not plain.adapted
    with torch.no_grad():
        torch.testing.assert_close(plain.embed_batch(batch)["a"], after, atol=0, rtol=0)


def test_freeze_with_trainable_leaves_the_named_layers_trainable() -> None:
    model = _model({"a": {"modality": "vector", "freeze": True, "trainable": ["net.6"]},
                    "b": {"modality": "vector", "freeze": True}})
    trainable = {n for n, p in model.encoders["a"].named_parameters() if p.requires_grad}
    assert trainable == {"net.6.weight", "net.6.bias"}
    assert model.frozen == {"b"} and model.adapted == {"a"}


@pytest.mark.parametrize(("section", "message"), [
    ({"trainable": ["net.6"]}, "set freeze: true with it"),
    ({"freeze": True, "trainable": ["net.7"]}, r"no sub-module 'net.7'; did you mean"),
    ({"lora": {"rank": 4}}, r"modalities.a.lora has no param 'rank'"),
    ({"lora": {"target_modules": ["q_proj"]}}, r"lora.target_modules \['q_proj'\].*net"),
])
def test_bad_adaptation_keys_name_the_key(section: dict, message: str) -> None:
    with pytest.raises(anymodal.ConfigError, match=message):
        _model({"a": {"modality": "vector", **section}, "b": {"modality": "vector"}})
