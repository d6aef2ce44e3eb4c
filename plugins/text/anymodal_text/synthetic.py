"""Labelled synthetic sentences, made from templates with no file.

Class ``k`` is a colour/shape pair: colour ``COLOURS[k % 6]``, shape ``SHAPES[(k // 6) % 6]``.
``anymodal_image.synthetic`` draws the same pairs with the same numbering, so that text
and images synthesised from the same labels describe each other ("a photo of a red
circle" next to a red disc) and a model trained on them can be probed zero-shot.
Each sentence varies its template, synonyms, size and place, so that the class is carried
by the colour and shape words alone.
"""

from __future__ import annotations

import torch

__all__ = ["COLOURS", "MAX_CLASSES", "SHAPES", "class_name", "make_sentences"]

COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
SHAPES = ("circle", "square", "triangle", "ring", "cross", "diamond")
MAX_CLASSES = len(COLOURS) * len(SHAPES)

# Synonyms are specific to their class: no word names two colours or two shapes.
_COLOUR_WORDS = {
    "red": ("red", "scarlet", "crimson"),
    "green": ("green", "emerald", "grass-green"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "lemon"),
    "purple": ("purple", "violet", "lilac"),
    "cyan": ("cyan", "turquoise", "teal"),
}
_SHAPE_WORDS = {
    "circle": ("circle", "disc", "round dot"),
    "square": ("square", "square tile", "box shape"),
    "triangle": ("triangle", "triangular shape", "three-cornered shape"),
    "ring": ("ring", "hollow circle", "loop"),
    "cross": ("cross", "plus sign", "cross mark"),
    "diamond": ("diamond", "rhombus", "diamond shape"),
}
_SIZES = ("small", "large", "tiny", "big", "medium-sized")
_PLACES = ("centre", "top", "bottom", "left", "right", "corner")
_TEMPLATES = (
    "a photo of {a} {colour} {shape}",
    "{a} {size} {colour} {shape}",
    "a picture of one {colour} {shape} on a plain background",
    "the {shape} is {colour}",
    "there is {a} {size} {shape}, coloured {colour}",
    "{colour} {shape}",
    "an image showing {a} {colour} {shape} near the {place}",
    "look: {a} {colour} {shape} at the {place}",
)


def class_name(label: int) -> str:
    """The plain name of class ``label``, e.g. ``"red circle"``."""
    label = int(label) % MAX_CLASSES
    return f"{COLOURS[label % len(COLOURS)]} {SHAPES[label // len(COLOURS)]}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(options: tuple[str, ...], generator: torch.Generator) -> str:
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def make_sentences(
    n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
    num_classes: int = 16,
) -> tuple[list[str], torch.Tensor]:
    """``n`` sentences and their labels.

    Args:
        n: how many sentences.
        generator: the source of every random choice (same seed, same sentences).
        labels: ``LongTensor[n]``; sentence ``i`` describes class ``labels[i] % num_classes``.
            ``None``: labels drawn uniformly from the generator.
        num_classes: classes in use (at most :data:`MAX_CLASSES`).

    Returns:
        ``(sentences, labels)`` with ``labels`` reduced modulo ``num_classes``.
    """
    if labels is None:
        labels = torch.randint(num_classes, (n,), generator=generator)
    labels = torch.as_tensor(labels, dtype=torch.long)[:n] % num_classes
    sentences = []
    for label in labels.tolist():
        colour = _pick(_COLOUR_WORDS[COLOURS[label % len(COLOURS)]], generator)
        shape = _pick(_SHAPE_WORDS[SHAPES[label // len(COLOURS)]], generator)
        size, place = _pick(_SIZES, generator), _pick(_PLACES, generator)
        template = _pick(_TEMPLATES, generator)
        # The article agrees with whatever word follows "{a}" in this template.
        follower = size if "{a} {size}" in template else colour
        sentences.append(template.format(a=_article(follower), colour=colour, shape=shape,
                                         size=size, place=place))
    return sentences, labels
