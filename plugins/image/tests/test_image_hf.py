"""``image_hf``: a tiny random ViT and its image processor saved to a folder, loaded offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.testing import check_encoder, check_trains_and_reloads, save_tiny_hf_model


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer ViT at 32 pixels and its processor, in one folder."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64)
    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5, 0.4, 0.3],
                                  image_std=[0.2, 0.2, 0.2])
    return save_tiny_hf_model(tmp_path_factory.mktemp("tiny_vit"), ViTModel, config, processor)


def test_the_models_processor_prepares_items_in_the_transform(tiny_vit: Path) -> None:
    from transformers import ViTImageProcessor

    image = anymodal.get_modality("image", processor=str(tiny_vit))
    raw = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    item = image.transform(raw, False)
    expected = ViTImageProcessor.from_pretrained(tiny_vit)(images=raw, return_tensors="pt")
    assert item.shape == (3, 32, 32)
    torch.testing.assert_close(item, expected["pixel_values"][0])
    assert image.synthesize(2, torch.Generator().manual_seed(0))[0].shape == (3, 32, 32)


def test_contract_with_the_model_named_once(tiny_vit: Path) -> None:
    spec = anymodal.get_encoder_spec("image_hf")
    options = {"processor": str(tiny_vit)}
    check_encoder(spec, {}, options)
    check_encoder(spec, {"pooling": "mean", "layer": "layers.0"}, options)
    encoder = anymodal.create_encoder("image_hf", anymodal.get_modality("image", **options))
    assert encoder.config.model == str(tiny_vit) and encoder.width == 32


def test_pooling_choices_differ(tiny_vit: Path) -> None:
    images = torch.randn(2, 3, 32, 32)
    outs = []
    for pooling in ("cls", "mean", "pooler"):
        encoder = anymodal.create_encoder("image_hf", model=str(tiny_vit), pooling=pooling)
        with torch.no_grad():
            outs.append(encoder.eval()(images))
    assert all(out.shape == (2, 32) for out in outs)
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


@pytest.mark.parametrize("freeze", [False, True])
def test_trains_saves_and_reloads_bit_identically(tiny_vit: Path, tmp_path: Path,
                                                  freeze: bool) -> None:
    check_trains_and_reloads({
        "image": {"encoder": "image_hf", "options": {"processor": str(tiny_vit)},
                  "params": {"freeze": freeze}},
        "v": {"modality": "vector"},
    }, tmp_path / "model")
