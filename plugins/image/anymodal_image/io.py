"""Reading an image item with Pillow, from a path, bytes or an open ``PIL.Image``.

Whatever Pillow decodes is accepted (png, jpeg, webp, bmp, gif, tiff...; an animated file
gives its first frame). The pixels are decoded at once (``Image.load()``), so that a
truncated or corrupt file fails here, as a :class:`anymodal.DataError` naming it, and not
later inside a transform. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is deliberately left off:
a cut file must not pass as an image whose bottom is grey.

Every mode becomes RGB: EXIF orientation is applied, greyscale is repeated over three
channels, 16-bit greyscale is scaled to 8 bits, palettes are expanded, and transparent
pixels (alpha channel or palette transparency) are composited onto a grey background
rather than keeping whatever colour lies under them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from anymodal import DataError

__all__ = ["DEFAULT_MAX_PIXELS", "load_image", "to_rgb"]


def to_rgb(image: Any, background: int = 255) -> Any:
    """Convert a ``PIL.Image`` of any mode to an RGB ``PIL.Image``.

    Args:
        image: the decoded image.
        background: grey level (0-255) under transparent pixels.
    """
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # High bit depth greyscale: Pillow's convert("L") would clip, not scale.
        values = np.asarray(image, dtype=np.float32)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max() > 255):
            values = values / 257.0
        image = Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), "L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (background, background, background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _open(source: Any) -> tuple[str, Any]:
    """The name of ``source`` in messages, and what ``Image.open`` reads."""
    if isinstance(source, (str, PurePath)):
        path = Path(source)
        if not path.exists():
            raise DataError(source, "file not found (expected an image file)")
        if not path.is_file():
            raise DataError(source, "is not a regular file (expected an image file)")
        return str(source), path
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise DataError("image bytes[0]", "is empty")
        return f"image bytes[{len(data)}]", io.BytesIO(data)
    raise DataError(f"image item of type {type(source).__name__}",
                    "expected a path, encoded image bytes or a PIL.Image")


# Pixels an image may have before it is refused, undecoded (options: max_pixels). A
# 12000 x 12000 PNG took 1.8 GB to decode before becoming a 32 x 32 item.
DEFAULT_MAX_PIXELS = 50_000_000


def load_image(source: Any, background: int = 255, max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> torch.Tensor:
    """Decode one image to RGB pixels.

    The header is read first: an image of more than ``max_pixels`` pixels is refused before
    a byte of it is decoded (Pillow knows the size from the header alone).

    Args:
        source: a path (``str`` or :class:`pathlib.Path`), the bytes of an encoded image,
            or a ``PIL.Image``.
        background: grey level (0-255) under transparent pixels.
        max_pixels: the largest width x height accepted (``0``: no limit).

    Returns:
        ``uint8`` tensor ``[3, H, W]``.

    Raises:
        DataError: a missing file, data Pillow cannot identify, a truncated or corrupt
            image, an image too large to decode safely, or a source of another type.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    open_image: Callable[[], Any]
    if isinstance(source, Image.Image):
        # An Image.open()ed PIL image may not be decoded yet either: same checks.
        name, open_image = f"PIL image {source.mode} {source.size}", partial(
            contextlib.nullcontext, source)
    else:
        name, stream = _open(source)
        open_image = partial(Image.open, stream)
    try:
        with open_image() as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if max_pixels and width * height > max_pixels:
                raise DataError(name, f"has {width} x {height} = {width * height:,} pixels, "
                                f"over the limit of {max_pixels:,} (the modality's "
                                "max_pixels option); refused before decoding")
            image.load()  # decode now: a truncated file raises here
            rgb = to_rgb(ImageOps.exif_transpose(image), background)
    except UnidentifiedImageError:
        raise DataError(name, "is not an image Pillow can read (expected png, jpeg, "
                        "webp or another format Pillow decodes)") from None
    except Image.DecompressionBombError as exc:
        raise DataError(name, f"is too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports cut or damaged data as OSError ("image file is truncated"),
        # SyntaxError (bad PNG chunks) or ValueError, depending on the codec.
        raise DataError(name, f"is truncated or corrupt ({exc})") from None
    if rgb.width == 0 or rgb.height == 0:
        raise DataError(name, f"has no pixels (size {rgb.size})")
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()
