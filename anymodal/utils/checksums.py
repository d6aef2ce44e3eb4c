"""SHA-256 checksums of the files of a folder, recorded at write and verified at read.

A saved artefact (model folder, index, checkpoint) lists every file it needs with its size
and digest; it counts as complete only when each listed file is present, of that size and
that digest. A bit flip, a truncation or a missing file is then named, never loaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from anymodal.errors import ArtifactError

__all__ = ["digest_files", "sha256_file", "verify_files"]

_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks.

    Args:
        path: the file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_files(folder: str | os.PathLike[str], names: Iterable[str]
                 ) -> dict[str, dict[str, int | str]]:
    """``{name: {"size": bytes, "sha256": hex}}`` for each file ``name`` under ``folder``.

    Args:
        folder: the artefact's folder.
        names: paths relative to ``folder`` (``/``-separated).
    """
    root = Path(folder)
    return {name: {"size": (root / name).stat().st_size, "sha256": sha256_file(root / name)}
            for name in sorted(names)}


def verify_files(folder: str | os.PathLike[str], listed: object, what: str) -> None:
    """Check that every listed file is present, of its size and digest.

    Args:
        folder: the artefact's folder.
        listed: the ``digest_files`` mapping read back from the artefact's metadata.
        what: how the artefact is named in errors (e.g. ``model folder``).

    Raises:
        ArtifactError: naming the first file that is missing, truncated or altered.
    """
    root = Path(folder)
    if not isinstance(listed, Mapping) or not listed:
        raise ArtifactError(f"{root}: the {what}'s file list is missing or empty; expected "
                            "a mapping of file name to size and sha256")
    for name, entry in listed.items():
        path = root / str(name)
        if not _inside(root, path):
            raise ArtifactError(f"{root}: the {what} lists {name!r}, outside its folder")
        if not isinstance(entry, Mapping) or not {"size", "sha256"} <= set(entry):
            raise ArtifactError(f"{root}: the {what}'s entry for {name!r} is {entry!r}; "
                                "expected size and sha256")
        if not path.is_file():
            raise ArtifactError(f"{path} is missing (the {what} lists it)")
        size = path.stat().st_size
        if size != entry["size"]:
            raise ArtifactError(f"{path} has {size} bytes, the {what} expects "
                                f"{entry['size']} (truncated or replaced)")
        found = sha256_file(path)
        if found != entry["sha256"]:
            raise ArtifactError(f"{path} is damaged: sha256 {found[:12]}..., the {what} "
                                f"expects {str(entry['sha256'])[:12]}...")


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` stays inside ``root`` once ``..`` and links are resolved."""
    return path.resolve().is_relative_to(root.resolve())
