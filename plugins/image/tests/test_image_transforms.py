"""The image transform (resize, crops, flip, normalise), collate and options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymodal
from anymodal import ConfigError


def _solid(r: int, g: int, b: int, height: int = 40, width: int = 60) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.uint8)[:, None, None].expand(3, height, width)


def test_eval_normalises_exactly() -> None:
    image = anymodal.get_modality("image", size=16, mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0])
    item = image.transform(_solid(255, 0, 51), False)
    assert item.shape == (3, 16, 16) and item.dtype == torch.float32
    torch.testing.assert_close(item[:, 0, 0], torch.tensor([2.0, -1.0, -0.3]))


def test_eval_resizes_short_side_then_centre_crops() -> None:
    # A 40x120 image in thirds: red | green | blue. The centre crop keeps only green.
    pixels = torch.cat([_solid(255, 0, 0, 40, 40), _solid(0, 255, 0, 40, 40),
                        _solid(0, 0, 255, 40, 40)], dim=2)
    image = anymodal.get_modality("image", size=20, mean=[0, 0, 0], std=[1, 1, 1])
    item = image.transform(pixels, False)
    assert item.shape == (3, 20, 20)
    torch.testing.assert_close(item[:, :, 2:-2].mean(dim=(1, 2)), torch.tensor([0.0, 1.0, 0.0]))
    # With resize > size, the crop sees a smaller central part of the image.
    wider = anymodal.get_modality("image", size=20, resize=40)
    assert wider.transform(pixels, False).shape == (3, 20, 20)


def test_eval_is_deterministic_and_train_varies(image_files: dict[str, Path]) -> None:
    image = anymodal.get_modality("image", size=24)
    raw = image.load(image_files["rgb.png"])
    assert torch.equal(image.transform(raw, False), image.transform(raw, False))
    torch.manual_seed(0)
    outs = [image.transform(raw, True) for _ in range(6)]
    assert all(o.shape == (3, 24, 24) for o in outs)
    assert len({tuple(o.flatten()[:50].tolist()) for o in outs}) > 1


def test_train_flip_only() -> None:
    pixels = torch.cat([_solid(255, 0, 0, 32, 16), _solid(0, 0, 255, 32, 16)], dim=2)
    image = anymodal.get_modality("image", size=32, train_crop="center", hflip=1.0)
    flipped = image.transform(pixels, True)
    torch.testing.assert_close(flipped, image.transform(pixels, False).flip(-1))
    never = anymodal.get_modality("image", size=32, train_crop="center", hflip=0.0)
    torch.testing.assert_close(never.transform(pixels, True), never.transform(pixels, False))


def test_train_random_crop_is_a_window_of_the_image() -> None:
    noise = torch.randint(256, (64, 64), generator=torch.Generator().manual_seed(0))
    pixels = noise.to(torch.uint8).expand(3, 64, 64)
    image = anymodal.get_modality("image", size=32, resize=64, train_crop="random", hflip=0.0,
                                  mean=[0, 0, 0], std=[1, 1, 1])
    torch.manual_seed(1)
    windows = set()
    for _ in range(5):
        crop = (image.transform(pixels, True)[0] * 255).round().to(torch.uint8)
        found = [(i, j) for i in range(33) for j in range(33)
                 if torch.equal(crop, pixels[0, i:i + 32, j:j + 32])]
        assert len(found) == 1  # an exact window: no resampling at resize == image size
        windows.add(found[0])
    assert len(windows) > 1


def test_rejects_raw_that_is_not_uint8_rgb() -> None:
    image = anymodal.get_modality("image", size=16)
    with pytest.raises(ValueError, match=r"uint8 \[3, H, W\]"):
        image.transform(torch.rand(3, 16, 16), False)


def test_collate_stacks() -> None:
    image = anymodal.get_modality("image", size=16)
    items = [image.transform(_solid(i * 20, 0, 0), False) for i in range(5)]
    batch = image.collate(items)
    assert batch.shape == (5, 3, 16, 16)
    assert torch.equal(batch[3], items[3])


@pytest.mark.parametrize("params, message", [
    ({"size": 4}, "size=4"),
    ({"size": 32, "resize": 16}, "resize=16"),
    ({"train_crop": "zoom"}, "train_crop='zoom'"),
    ({"min_scale": 0.0}, "min_scale"),
    ({"hflip": 2.0}, "hflip"),
    ({"mean": [0.5]}, "mean and std"),
    ({"std": [1.0, 0.0, 1.0]}, "mean and std"),
    ({"background": 300}, "background"),
    ({"num_classes": 37}, "num_classes=37"),
])
def test_bad_options(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        anymodal.get_modality("image", **params)
