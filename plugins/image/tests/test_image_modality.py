"""The image modality as a whole: registration, contract, synthetic shapes."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

import anymodal
from anymodal.testing import check_modality, check_registered
from anymodal_image.synthetic import COLOURS, MAX_CLASSES, RGB, SHAPES, class_name, draw_images


def test_registered_through_the_entry_point() -> None:
    check_registered("image", "anymodal-image", ["image_vit_tiny", "image_cnn_small", "image_timm"])


def test_contract(image_files: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(image_files["rgb.jpg"].read_bytes()[:400])
    fake = tmp_path / "fake.webp"
    fake.write_bytes(b"RIFF0000WEBPnot really")
    check_modality(anymodal.get_modality("image", size=32),
                   bad_sources=[cut, str(cut), fake, tmp_path / "missing.png", b"",
                                b"\x89PNG\r\n\x1a\n broken"])


def test_load_transform_collate_real_files(image_files: dict[str, Path]) -> None:
    image = anymodal.get_modality("image", size=32)
    items = [image.transform(image.load(path), False) for path in image_files.values()]
    batch = image.collate(items)
    assert batch.shape == (len(image_files), 3, 32, 32)
    assert torch.isfinite(batch).all()


def test_synthetic_images_show_their_class() -> None:
    labels = torch.arange(MAX_CLASSES)
    pixels, out = draw_images(MAX_CLASSES, 48, torch.Generator().manual_seed(3), labels,
                              MAX_CLASSES)
    assert pixels.shape == (MAX_CLASSES, 3, 48, 48) and pixels.dtype == torch.uint8
    assert out.tolist() == labels.tolist()
    for label in labels.tolist():
        image = pixels[label].float() / 255
        # The shape is the saturated pixels (the background is grey); its mean colour is
        # nearest to the class colour.
        saturation = image.max(0).values - image.min(0).values
        shape = image[:, saturation > 0.3]
        assert shape.shape[1] > 40, class_name(label)
        nearest = (RGB - shape.mean(1)).norm(dim=1).argmin()
        assert COLOURS[int(nearest)] == class_name(label).split()[0]
        assert SHAPES[label // 6] == class_name(label).split()[1]


def test_shapes_differ_in_area_profile() -> None:
    # Same colour, same seed: the six shapes cover clearly different pixel sets.
    labels = torch.tensor([0, 6, 12, 18, 24, 30])
    pixels, _ = draw_images(6, 48, torch.Generator().manual_seed(0), labels, MAX_CLASSES)
    masks = [(p.float().max(0).values - p.float().min(0).values) > 60 for p in pixels]
    for i in range(6):
        for j in range(i + 1, 6):
            assert (masks[i] ^ masks[j]).sum() > 30


def test_synthesize_deterministic_and_label_modulo() -> None:
    image = anymodal.get_modality("image", size=24, num_classes=4)
    a = image.synthesize(5, torch.Generator().manual_seed(0), torch.tensor([0, 1, 2, 3, 4]))
    b = image.synthesize(5, torch.Generator().manual_seed(0), torch.tensor([0, 1, 2, 3, 4]))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (3, 24, 24)
    _, reduced = draw_images(5, 24, torch.Generator().manual_seed(0),
                             torch.tensor([0, 1, 2, 3, 4]), 4)
    assert reduced.tolist() == [0, 1, 2, 3, 0]


def test_spec_pickles_for_spawned_workers(image_files: dict[str, Path]) -> None:
    image = anymodal.get_modality("image", size=16)
    image.transform(image.load(image_files["rgb.png"]), False)  # builds the pipelines
    clone = pickle.loads(pickle.dumps(image))
    raw = clone.load(image_files["rgb.png"])
    assert torch.equal(clone.transform(raw, False), image.transform(raw, False))
