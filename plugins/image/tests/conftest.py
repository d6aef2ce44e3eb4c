"""Real image files, written with Pillow's own encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def gradient(width: int = 48, height: int = 32) -> np.ndarray:
    """An RGB test pattern with distinct rows, columns and channels: ``uint8 [H, W, 3]``."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1),
                     (x + y) * 255 // (width + height - 2)], axis=-1).astype(np.uint8)


@pytest.fixture
def expected() -> torch.Tensor:
    """The pixels every file of ``image_files`` was written from: ``uint8 [3, 32, 48]``."""
    return torch.from_numpy(gradient()).permute(2, 0, 1)


@pytest.fixture
def image_files(tmp_path: Path) -> dict[str, Path]:
    """One file per format/mode case, all 48x32 (width x height)."""
    rgb = Image.fromarray(gradient())
    files = {}

    def save(name: str, image: Image.Image, **kwargs: object) -> None:
        files[name] = tmp_path / name
        image.save(files[name], **kwargs)

    save("rgb.png", rgb)
    save("rgb.jpg", rgb, quality=95)
    save("rgb.webp", rgb, lossless=True)
    save("lossy.webp", rgb, quality=80)
    save("grey.png", rgb.convert("L"))
    save("grey16.png", Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257))
    save("palette.png", rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16))
    save("cmyk.jpg", rgb.convert("CMYK"), quality=95)
    rgba = rgb.convert("RGBA")
    alpha = np.full((32, 48), 255, np.uint8)
    alpha[:, :24] = 0  # left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    save("rgba.png", rgba)
    save("la.png", rgba.convert("LA"))
    return files
