"""Loading real image files (png, jpeg, webp; every mode) and every bad-input case."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anymodal import DataError
from anymodal.testing import check_data_error
from anymodal_image.io import load_image


@pytest.mark.parametrize("name", ["rgb.png", "rgb.webp"])
def test_lossless_formats_are_exact(image_files: dict[str, Path], expected: torch.Tensor,
                                    name: str) -> None:
    pixels = load_image(image_files[name])
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 32, 48)
    assert torch.equal(pixels, expected)


@pytest.mark.parametrize("name", ["rgb.jpg", "lossy.webp", "cmyk.jpg"])
def test_lossy_formats_are_close(image_files: dict[str, Path], expected: torch.Tensor,
                                 name: str) -> None:
    pixels = load_image(image_files[name])
    assert pixels.shape == (3, 32, 48)
    error = (pixels.float() - expected.float()).abs().mean()
    assert error < 12, f"{name}: mean abs error {error:.1f}"


def test_palette_is_expanded(image_files: dict[str, Path]) -> None:
    pixels = load_image(image_files["palette.png"])
    with Image.open(image_files["palette.png"]) as image:
        assert image.mode == "P"
        reference = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(pixels, reference)
    assert len(torch.unique(pixels.flatten(1), dim=1).T) <= 16


def test_path_str_bytes_and_pil_give_the_same(image_files: dict[str, Path]) -> None:
    path = image_files["rgb.png"]
    reference = load_image(path)
    assert torch.equal(load_image(str(path)), reference)
    assert torch.equal(load_image(path.read_bytes()), reference)
    assert torch.equal(load_image(bytearray(path.read_bytes())), reference)
    with Image.open(path) as image:
        assert torch.equal(load_image(image), reference)


@pytest.mark.parametrize("name", ["grey.png", "grey16.png"])
def test_greyscale_becomes_three_equal_channels(image_files: dict[str, Path],
                                                expected: torch.Tensor, name: str) -> None:
    pixels = load_image(image_files[name])
    assert pixels.shape == (3, 32, 48)
    assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])
    rgb = Image.fromarray(expected.permute(1, 2, 0).numpy())
    grey = torch.from_numpy(np.array(rgb.convert("L")))
    # 16-bit values are scaled down to 8 bits, not clipped to white.
    assert (pixels[0].int() - grey.int()).abs().max() <= 1


@pytest.mark.parametrize("name", ["rgba.png", "la.png"])
def test_alpha_is_composited_onto_the_background(image_files: dict[str, Path],
                                                 expected: torch.Tensor, name: str) -> None:
    white = load_image(image_files[name])
    black = load_image(image_files[name], background=0)
    assert white[:, :, :24].eq(255).all() and black[:, :, :24].eq(0).all()
    assert torch.equal(white[:, :, 24:], black[:, :, 24:])  # opaque half untouched
    if name == "rgba.png":
        assert torch.equal(white[:, :, 24:], expected[:, :, 24:])


def test_palette_transparency_is_composited(tmp_path: Path) -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([10, 200, 30] + [0, 0, 0] * 255)
    image.paste(1, (0, 0, 4, 8))
    path = tmp_path / "ptrans.png"
    image.save(path, transparency=1)
    pixels = load_image(path, background=128)
    assert pixels[:, :, :4].eq(128).all()
    assert pixels[:, :, 4:].eq(torch.tensor([10, 200, 30])[:, None, None]).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (48, 32), (200, 10, 10))  # 48 wide, 32 high
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    assert load_image(path).shape == (3, 48, 32)


def _cut(path: Path, fraction: float = 0.5) -> bytes:
    data = path.read_bytes()
    return data[: int(len(data) * fraction)]


@pytest.mark.parametrize("name", ["rgb.png", "rgb.jpg", "rgb.webp", "lossy.webp"])
def test_truncated_file_names_it(image_files: dict[str, Path], tmp_path: Path,
                                 name: str) -> None:
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(_cut(image_files[name]))
    check_data_error(lambda: load_image(cut), cut, "truncated or corrupt")
    with pytest.raises(DataError, match=r"image bytes\[\d+\]: is truncated or corrupt"):
        load_image(_cut(image_files[name]))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    check_data_error(lambda: load_image(tmp_path / "missing.png"), "missing.png", "file not found")
    with pytest.raises(DataError, match="not a regular file"):
        load_image(tmp_path)


def test_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("this is not a png", encoding="utf-8")
    check_data_error(lambda: load_image(fake), fake, "not an image Pillow can read")


def test_empty_bytes_and_wrong_type() -> None:
    with pytest.raises(DataError, match=r"image bytes\[0\]: is empty"):
        load_image(b"")
    with pytest.raises(DataError, match="image item of type list: expected a path"):
        load_image([1, 2, 3])


def test_decompression_bomb_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    # Pillow raises past twice MAX_IMAGE_PIXELS; lower it rather than write a huge file.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="too large to decode safely"):
        load_image(buffer.getvalue())


def test_lazy_pil_image_that_is_truncated() -> None:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "PNG")
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data[: len(data) // 2])) as lazy:  # header read, not decoded
        with pytest.raises(DataError, match=r"PIL image RGB .*truncated or corrupt"):
            load_image(lazy)
