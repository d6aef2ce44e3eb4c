"""Images over the pixel limit are refused from their header, before decoding (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageFile

import anymodal
from anymodal_image.io import load_image


def test_an_image_over_the_limit_is_refused_before_decoding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 14: a 12000 x 12000 PNG was decoded (1.8 GB) before becoming 32 x 32.
    path = tmp_path / "big.png"
    Image.new("RGB", (2000, 1000), (10, 20, 30)).save(path)
    decoded: list[object] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self) or real_load(self))
    with pytest.raises(anymodal.DataError, match=r"2000 x 1000 = 2,000,000 pixels.*"
                                                 r"refused before decoding"):
        load_image(str(path), max_pixels=1_000_000)
    assert decoded == []
    assert load_image(str(path), max_pixels=2_000_000).shape == (3, 1000, 2000)
    assert decoded


def test_the_limit_is_a_modality_option(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    spec = anymodal.get_modality("image", size=32, max_pixels=50_000)
    with pytest.raises(anymodal.DataError, match="max_pixels"):
        spec.load(str(path))
