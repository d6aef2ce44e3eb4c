"""``image_open_clip`` and ``text_open_clip``: the two towers of one tiny CLIP, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.testing import check_encoder, check_trains_and_reloads

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                   "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny CLIP architecture (JSON) and its random weights saved to a file."""
    import open_clip

    folder = tmp_path_factory.mktemp("tiny_clip")
    config_file = folder / "tiny-clip-anymodal.json"
    config_file.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(config_file))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip-anymodal")
    torch.save(model.state_dict(), folder / "weights.pt")
    return {"config_file": str(config_file), "pretrained": str(folder / "weights.pt")}


def test_both_towers_pass_the_contract(tiny_clip: dict[str, str]) -> None:
    check_encoder(anymodal.get_encoder_spec("image_open_clip"), tiny_clip, {"size": 32})
    check_encoder(anymodal.get_encoder_spec("text_open_clip"), tiny_clip)


def test_towers_reproduce_open_clip_and_keep_one_tower_each(tiny_clip: dict[str, str]) -> None:
    import open_clip

    reference = open_clip.create_model("tiny-clip-anymodal", pretrained=tiny_clip["pretrained"])
    reference.eval()
    image_tower = anymodal.create_encoder("image_open_clip", **tiny_clip).eval()
    text_tower = anymodal.create_encoder("text_open_clip", **tiny_clip).eval()
    images = torch.randn(2, 3, 32, 32)
    texts = ["a red circle", "a blue square"]
    tokens = open_clip.get_tokenizer("tiny-clip-anymodal")(texts)
    with torch.no_grad():
        torch.testing.assert_close(image_tower(images), reference.encode_image(images))
        torch.testing.assert_close(text_tower({"text": texts}), reference.encode_text(tokens))
    assert not any(k.startswith("model.visual") for k in text_tower.state_dict())
    assert all(k.startswith("visual.") for k in image_tower.state_dict())
    with pytest.raises(ValueError, match="set the image modality's size"):
        image_tower(torch.randn(1, 3, 64, 64))


def test_loading_errors(tiny_clip: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(anymodal.ConfigError, match="does not exist"):
        anymodal.create_encoder("image_open_clip", config_file=tiny_clip["config_file"],
                                pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(anymodal.ConfigError, match="open_clip has no model 'ViT-B-33'"):
        anymodal.create_encoder("text_open_clip", model_name="ViT-B-33")


def test_the_pair_frozen_together_trains_its_heads_and_reloads(tiny_clip: dict[str, str],
                                                              tmp_path: Path) -> None:
    """The ImageBind recipe: the CLIP pair frozen, a third modality learns its space."""
    frozen = {**tiny_clip, "freeze": True}
    model = check_trains_and_reloads({
        "image": {"encoder": "image_open_clip", "params": frozen, "options": {"size": 32}},
        "text": {"encoder": "text_open_clip", "params": frozen},
        "v": {"modality": "vector"},
    }, tmp_path / "model")
    trainable = {k.split(".")[0] for k, p in model.encoders.named_parameters()
                 if p.requires_grad}
    assert trainable == {"v"}
