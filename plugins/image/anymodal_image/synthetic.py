"""Labelled synthetic images: one coloured shape on a grey, noisy background.

Class ``k`` is a colour/shape pair, colour ``COLOURS[k % 6]``, shape ``SHAPES[(k // 6) % 6]``:
the same numbering as ``anymodal_text.synthetic``, so that images and sentences
synthesised from the same labels describe each other. Position, size, rotation, exact
hue, background and noise vary per image; the class is carried by colour and shape only.
Shapes are drawn with torch on a pixel grid (no file, no Pillow), then pass through the
eval transform like any loaded image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from anymodal_image.config import ImageConfig

__all__ = ["COLOURS", "MAX_CLASSES", "RGB", "SHAPES", "class_name", "draw_images",
           "synthesize_images"]

COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
SHAPES = ("circle", "square", "triangle", "ring", "cross", "diamond")
MAX_CLASSES = len(COLOURS) * len(SHAPES)
RGB = torch.tensor([
    [0.86, 0.16, 0.16],
    [0.16, 0.70, 0.24],
    [0.16, 0.31, 0.86],
    [0.92, 0.84, 0.16],
    [0.58, 0.24, 0.78],
    [0.16, 0.80, 0.84],
])

Mask = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def _triangle(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
    # Equilateral, inscribed in radius 1.2 r (its area is small for its radius): inside
    # all three edges, each 0.6 r from the centre.
    inside = torch.ones_like(x, dtype=torch.bool)
    for angle in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6):
        inside &= x * math.cos(angle) + y * math.sin(angle) < 0.6 * r
    return inside


_MASKS: dict[str, Mask] = {
    "circle": lambda x, y, r: x.square() + y.square() < r * r,
    "square": lambda x, y, r: torch.maximum(x.abs(), y.abs()) < 0.8 * r,
    "triangle": _triangle,
    "ring": lambda x, y, r: ((x.square() + y.square()).sqrt() - 0.78 * r).abs() < 0.22 * r,
    "cross": lambda x, y, r: ((x.abs() < 0.28 * r) & (y.abs() < r))
    | ((y.abs() < 0.28 * r) & (x.abs() < r)),
    # Elongated (0.58 aspect), so that it is not a square turned by 45 degrees.
    "diamond": lambda x, y, r: x.abs() / (0.7 * r) + y.abs() / (1.2 * r) < 1,
}


def class_name(label: int) -> str:
    """The plain name of class ``label``, e.g. ``"red circle"``."""
    label = int(label) % MAX_CLASSES
    return f"{COLOURS[label % len(COLOURS)]} {SHAPES[label // len(COLOURS)]}"


def draw_images(n: int, size: int, generator: torch.Generator,
                labels: torch.Tensor | None = None, num_classes: int = 16,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` labelled images.

    Args:
        n: how many images.
        size: their side in pixels.
        generator: the source of every random draw (same seed, same images).
        labels: ``LongTensor[n]``; image ``i`` shows class ``labels[i] % num_classes``.
            ``None``: labels drawn from the generator.
        num_classes: classes in use (at most :data:`MAX_CLASSES`).

    Returns:
        ``(images uint8 [n, 3, size, size], labels LongTensor[n])``.
    """
    if labels is None:
        labels = torch.randint(num_classes, (n,), generator=generator)
    labels = torch.as_tensor(labels, dtype=torch.long)[:n] % num_classes
    # Every draw, in a fixed order: centre (2), radius, angle, hue jitter (3),
    # background level, background gradient (2).
    params = torch.rand(n, 9, generator=generator)
    noise = torch.randn(n, 3, size, size, generator=generator)
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # pixel centres
    v, u = torch.meshgrid(grid, grid, indexing="ij")
    images = torch.empty(n, 3, size, size)
    for i, label in enumerate(labels.tolist()):
        p = params[i]
        cx, cy = (p[0] - 0.5) * 0.6, (p[1] - 0.5) * 0.6
        radius = float(0.3 + 0.2 * p[2])
        angle = float(p[3]) * 2 * math.pi
        x = math.cos(angle) * (u - cx) + math.sin(angle) * (v - cy)
        y = -math.sin(angle) * (u - cx) + math.cos(angle) * (v - cy)
        mask = _MASKS[SHAPES[label // len(COLOURS)]](x, y, radius)
        colour = (RGB[label % len(COLOURS)] + (p[4:7] - 0.5) * 0.12).clamp(0, 1)
        # An unsaturated grey with a gentle gradient: never one of the saturated colours.
        background = 0.1 + 0.75 * p[7] + 0.08 * (p[8] - 0.5) * (u + v)
        canvas = background.expand(3, size, size).clone()
        canvas[:, mask] = colour[:, None]
        images[i] = canvas + 0.03 * noise[i]
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


def synthesize_images(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                      *, config: ImageConfig) -> list[torch.Tensor]:
    """``n`` eval-mode items of labelled shapes, drawn at the resize side and transformed.

    Shapes:
        output: ``n`` items ``float32 [3, size, size]``.
    """
    from anymodal_image.transforms import transform_image

    pixels, _ = draw_images(n, config.resize or config.size, generator, labels,
                            config.num_classes)
    return [transform_image(image, False, config) for image in pixels]
