"""Where a manifest's string sources point: inside the manifest's folder, or refused.

A manifest row names its items by strings. A string that names a file is resolved against
the manifest's folder, and must stay inside it (or inside a root the recipe names,
``data.<split>.root``) once ``..`` and symbolic links are followed: a manifest cannot make
training read ``/etc/shadow`` or ``../../secrets``. Which strings are paths at all is the
modality's call: a loader may carry a ``source_is_path(str) -> bool`` attribute (the text
modality's says: strings ending in ``.txt``), and a string it calls content is never
rewritten, so a caption that happens to equal a file name stays that caption. Without that
attribute, a string that names an existing file (relative to the manifest's folder, or
absolute) is a path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anymodal.errors import DataError

__all__ = ["MAX_NAME_BYTES", "path_rule", "resolve_source"]

# The longest file-name component most file systems accept; longer strings are not paths.
MAX_NAME_BYTES = 255


def path_rule(load: Callable[..., Any]) -> Callable[[str], bool] | None:
    """The loader's own rule telling a path from content, if it declares one.

    Args:
        load: a modality's ``load`` (possibly a ``functools.partial``).
    """
    for fn in (load, getattr(load, "func", None)):
        rule = getattr(fn, "source_is_path", None)
        if callable(rule):
            return rule  # type: ignore[no-any-return]
    return None


def _too_long(value: str) -> bool:
    """Whether some component of ``value`` is longer than a file name can be."""
    return any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
               for part in value.replace("\\", "/").split("/"))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # invalid names (NUL bytes, too long) are not files
        return False


def resolve_source(value: Any, base_dir: Path | None, root: Path | None = None,
                   is_path: Callable[[str], bool] | None = None) -> Any:
    """Resolve a manifest string that names a file; leave content alone.

    Args:
        value: the row's source (a string, number, list, bytes...).
        base_dir: the manifest's folder (``None``: the value is not from a manifest and is
            passed on unchanged).
        root: the folder paths must stay inside (default: ``base_dir``).
        is_path: the modality's rule telling a path from content (:func:`path_rule`).

    Returns:
        The file's absolute path (a ``str``) for a path; ``value`` itself otherwise.

    Raises:
        DataError: a path that leaves ``root``, that names something other than a regular
            file, or a string that names a file only in the working directory.
    """
    if not isinstance(value, str) or base_dir is None or not value:
        return value
    if is_path is not None and not is_path(value):
        return value  # content, by the modality's own rule
    if _too_long(value) or "\0" in value:
        return value  # no file can have this name: content (the loader judges it)
    candidate = Path(value) if os.path.isabs(value) else base_dir / value
    if is_path is None and not os.path.lexists(candidate):
        if _is_file(Path(value)):  # a loader would read it from the working directory
            raise DataError(value, f"names no file in the manifest's folder {base_dir} "
                            "(a file of that name in the working directory is not used)")
        return value  # content (an inline vector, a caption)
    allowed = (root if root is not None else base_dir).resolve()
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise DataError(value, f"cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(allowed):
        raise DataError(value, f"points outside {allowed} (to {resolved}); manifest paths "
                        "must stay inside the manifest's folder, or inside the folder "
                        "data.<split>.root names")
    if resolved.exists() and not resolved.is_file():  # a FIFO would block the reader
        raise DataError(value, f"{resolved} is not a regular file (a folder, FIFO, socket "
                        "or device); expected a file")
    return str(resolved)
