"""Encoders of the image modality: contract checks, shapes, timm with local weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import anymodal
from anymodal import ConfigError, PluginError
from anymodal.testing import check_encoder, check_trains_and_reloads

HAS_TIMM = importlib.util.find_spec("timm") is not None
needs_timm = pytest.mark.skipif(
    not HAS_TIMM, reason="image_timm needs timm: pip install 'anymodal-image[timm]'"
)
SMALL = {"size": 64}


@pytest.mark.parametrize("params, modality", [
    ({}, {}),  # the defaults, at 224 pixels
    ({"pool": "mean", "depth": 1, "width": 48, "heads": 2, "patch_size": 8}, SMALL),
])
def test_vit_contract(params: dict, modality: dict) -> None:
    check_encoder(anymodal.get_encoder_spec("image_vit_tiny"), params, modality)


@pytest.mark.parametrize("params", [{}, {"channels": [8, 16], "blocks": 2, "width": 24}])
def test_cnn_contract(params: dict) -> None:
    check_encoder(anymodal.get_encoder_spec("image_cnn_small"), params, SMALL)


def test_cnn_batchnorm_variant() -> None:
    # check_encoder compares, in eval, a model whose BatchNorm statistics its own train-mode
    # forward has just updated with a fresh twin, so BatchNorm models are checked here.
    image = anymodal.get_modality("image", **SMALL)
    batch = image.collate(image.synthesize(4, torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    cnn = anymodal.create_encoder("image_cnn_small", norm="batch", channels=[8, 16], blocks=2,
                                  width=24)
    out = cnn.train()(batch)
    assert out.shape == (4, 24)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in cnn.parameters())
    cnn.eval()
    with torch.no_grad():
        torch.testing.assert_close(cnn(batch[:1])[0], cnn(batch)[0], atol=1e-5, rtol=1e-4)


def test_vit_serves_other_sizes_by_interpolating_positions() -> None:
    torch.manual_seed(0)
    vit = anymodal.create_encoder("image_vit_tiny", image_size=64, patch_size=16, depth=1).eval()
    with torch.no_grad():
        assert vit(torch.randn(2, 3, 64, 64)).shape == (2, 192)
        assert vit(torch.randn(2, 3, 96, 48)).shape == (2, 192)
        # At its own size the table is used as is; interpolation to the same grid agrees.
        table = vit._positions(4, 4)
        assert table is vit.pos
        grid = vit.pos[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
        same = torch.nn.functional.interpolate(grid, size=(4, 4), mode="bicubic")
        torch.testing.assert_close(same, grid)


@pytest.mark.parametrize("name, params, message", [
    ("image_vit_tiny", {"heads": 5}, "heads=5 must divide"),
    ("image_vit_tiny", {"pool": "max"}, "pool='max'"),
    ("image_vit_tiny", {"image_size": 8}, "smaller than patch_size"),
    ("image_cnn_small", {"norm": "layer"}, "norm='layer'"),
    ("image_cnn_small", {"channels": []}, "channels must be non-empty"),
])
def test_bad_encoder_params(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        anymodal.create_encoder(name, **params)


def test_encoders_reject_wrong_input_shapes() -> None:
    vit = anymodal.create_encoder("image_vit_tiny", depth=1)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        vit(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match="H, W >= 16"):
        vit(torch.randn(2, 3, 8, 64))
    cnn = anymodal.create_encoder("image_cnn_small")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        cnn(torch.randn(3, 64, 64))


def test_timm_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(PluginError, match=r"pip install 'anymodal-image\[timm\]'"):
        anymodal.create_encoder("image_timm")


@needs_timm
@pytest.mark.parametrize("params", [
    {"model_name": "test_convnext"},
    {"model_name": "test_vit", "model_kwargs": {"img_size": 64}},
    # BatchNorm models only frozen: see test_cnn_batchnorm_variant.
    {"model_name": "test_resnet", "freeze": True},
])
def test_timm_contract(params: dict) -> None:
    check_encoder(anymodal.get_encoder_spec("image_timm"), params, SMALL)


@needs_timm
def test_timm_loads_local_weights_only(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(123)
    source = timm.create_model("test_resnet")  # with its 1000-class classifier
    path = tmp_path / "test_resnet.safetensors"
    save_file(source.state_dict(), str(path))
    torch.manual_seed(0)
    encoder = anymodal.create_encoder("image_timm", model_name="test_resnet",
                                      pretrained_path=str(path))
    loaded = encoder.model.state_dict()
    assert "fc.weight" not in loaded  # the classifier was dropped
    for key, value in loaded.items():
        torch.testing.assert_close(value, source.state_dict()[key], msg=key)
    x = torch.randn(2, 3, 64, 64)
    source.eval()
    encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), source.forward_head(source.forward_features(x),
                                                                   pre_logits=True))
    # A .pth file (torch.save of a plain state dict) loads the same way.
    pth = tmp_path / "test_resnet.pth"
    torch.save(source.state_dict(), pth)
    again = anymodal.create_encoder("image_timm", model_name="test_resnet",
                                    pretrained_path=str(pth))
    torch.testing.assert_close(again.model.state_dict()["conv1.0.weight"],
                               source.state_dict()["conv1.0.weight"])


@needs_timm
def test_timm_rejects_weights_of_another_model(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "vit.safetensors"
    save_file(timm.create_model("test_vit").state_dict(), str(path))
    with pytest.raises(ConfigError, match="does not fit 'test_resnet'"):
        anymodal.create_encoder("image_timm", model_name="test_resnet",
                                pretrained_path=str(path))


@needs_timm
def test_timm_bad_names_and_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model 'resnet_18'; did you mean"):
        anymodal.create_encoder("image_timm", model_name="resnet_18")
    with pytest.raises(ConfigError, match=r"no readable config\.json"):
        anymodal.create_encoder("image_timm", model_name=str(tmp_path))
    with pytest.raises(ConfigError, match="is not a file"):
        anymodal.create_encoder("image_timm", model_name="test_resnet",
                                pretrained_path=str(tmp_path / "none.safetensors"))
    with pytest.raises(ConfigError, match="bad model_kwargs"):
        anymodal.create_encoder("image_timm", model_name="test_resnet",
                                model_kwargs={"no_such_arg": 1})


@needs_timm
def test_timm_frozen_stays_in_eval_without_grad() -> None:
    encoder = anymodal.create_encoder("image_timm", model_name="test_resnet", freeze=True)
    encoder.train()
    assert not encoder.model.training
    out = encoder(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, encoder.width) and not out.requires_grad


@needs_timm
def test_timm_loads_a_model_folder_pools_and_reloads(tmp_path: Path) -> None:
    """timm's Hugging Face layout (config.json + model.safetensors), as a hub download is."""
    import json

    import timm
    from safetensors.torch import save_file

    folder = tmp_path / "test_resnet_folder"
    folder.mkdir()
    torch.manual_seed(0)
    source = timm.create_model("test_resnet", num_classes=0)
    save_file(source.state_dict(), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": "test_resnet"}))
    encoder = anymodal.create_encoder("image_timm", model_name=str(folder)).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images), source.eval()(images))
        peak = anymodal.create_encoder("image_timm", model_name=str(folder),
                                       pooling="max").eval()(images)
        assert peak.shape == (2, encoder.width)
        assert not torch.allclose(peak, encoder(images))
    check_trains_and_reloads({
        "image": {"encoder": "image_timm", "options": {"size": 64},
                  "params": {"model_name": str(folder), "freeze": True}},
        "v": {"modality": "vector"},
    }, tmp_path / "model", n=2)
