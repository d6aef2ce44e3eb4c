"""Reading a text item: a string, UTF-8 bytes, or a ``.txt`` file.

How a string is told from a path (``load_text``):

- a :class:`pathlib.Path` is always a file (any suffix), read as UTF-8;
- a ``str`` that ends in ``.txt`` (any case) and holds no line break is a path when that
  file exists, and also when it holds no whitespace at all (``"captions/0001.txt"``): a
  manifest that names a missing file must fail loudly, not train on the file's name;
- every other ``str`` is the text itself (``"a note saved as notes.txt"`` stays text);
- ``bytes`` are the UTF-8 text itself.

The text is NFC-normalised and stripped; an empty or whitespace-only text, a missing file
and bytes that are not UTF-8 raise :class:`anymodal.DataError` naming the item.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

from anymodal import DataError
from anymodal_text.tokenizer import normalize_text

__all__ = ["is_text_path", "load_text"]


def is_text_path(source: str) -> bool:
    """Whether the string ``source`` is taken as a path (see the module docstring)."""
    if not source.lower().endswith(".txt") or "\n" in source or "\r" in source:
        return False
    return os.path.isfile(source) or not any(ch.isspace() for ch in source)


def _describe(text: str) -> str:
    """How an in-memory text is named in messages: quoted, shortened."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return f"text {shown!r}"


def _decode(data: bytes, name: str) -> str:
    try:
        # utf-8-sig drops the byte-order mark that some editors put first.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            name, f"is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save it as UTF-8"
        ) from None


def _read_file(path: Path) -> str:
    if not path.exists():
        raise DataError(path, "file not found (expected a UTF-8 text file)")
    if not path.is_file():
        raise DataError(path, "is not a regular file (expected a UTF-8 text file)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror or exc})") from None
    return _decode(data, str(path))


def load_text(source: Any) -> str:
    """Read one text item.

    Args:
        source: a ``str`` (text or ``.txt`` path, see the module docstring), UTF-8
            ``bytes``, or a :class:`pathlib.Path`.

    Returns:
        The NFC-normalised, stripped text (never empty).

    Raises:
        DataError: a missing or unreadable file, bytes that are not UTF-8, an empty or
            whitespace-only text, or a source of another type.
    """
    if isinstance(source, PurePath) or (isinstance(source, str) and is_text_path(source)):
        name: str = str(source)
        text = _read_file(Path(source))
    elif isinstance(source, str):
        name, text = _describe(source), source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = f"text bytes[{len(source)}]"
        text = _decode(bytes(source), name)
    else:
        raise DataError(
            f"text item of type {type(source).__name__}",
            "expected a str, UTF-8 bytes or a pathlib.Path to a text file",
        )
    text = normalize_text(text)
    if not text:
        raise DataError(name, "is empty or only whitespace; a text item needs some text")
    return text


# The manifest reader asks the loader which strings are paths (anymodal.data.sources): only
# those are resolved against the manifest's folder; any other string stays the text itself.
load_text.source_is_path = is_text_path  # type: ignore[attr-defined]
