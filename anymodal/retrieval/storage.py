"""The on-disk form of an :class:`~anymodal.retrieval.index.Index`: a folder of three files.

```
my.index/
  index.json              format version, modality, model fingerprint, sizes, checksums
  items.jsonl             one {"id": ..., "payload": ...} per row, in row order
  embeddings.safetensors  "embeddings" float32 [N, D] (+ "faiss" uint8 [B], a built
                          FAISS index serialised by faiss.serialize_index, when saved)
```

Nothing is unpickled on load. ``index.json`` holds the SHA-256 of the two data files, so a
truncated or edited file is refused before it is read. The folder is written beside its
destination under a temporary name and renamed into place, so that a crash never leaves
half an index where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from anymodal._version import __version__
from anymodal.errors import DataError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IndexFileError",
    "StoredIndex",
    "read_index",
    "read_index_header",
    "write_index",
]

FORMAT_NAME = "anymodal-index"
FORMAT_VERSION = 1
HEADER_FILE = "index.json"
ITEMS_FILE = "items.jsonl"
TENSORS_FILE = "embeddings.safetensors"


class IndexFileError(DataError):
    """An index file is missing, damaged, of another format version, or was built by
    another model. ``source`` is the index's path."""


@dataclass
class StoredIndex:
    """Everything an index file holds.

    Shapes:
        embeddings: ``[N, D]`` float32; faiss: ``[B]`` uint8 or None.
    """

    embeddings: torch.Tensor
    ids: list[str]
    payloads: list[Any]
    header: dict[str, Any] = field(default_factory=dict)
    faiss: torch.Tensor | None = None


def _sha256(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def write_index(path: str | os.PathLike[str], stored: StoredIndex) -> Path:
    """Write ``stored`` as an index folder at ``path`` (atomically); returns the path.

    ``stored.header`` supplies the descriptive keys (modality, fingerprint, backend...);
    the format, sizes and checksums are filled in here.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tensors = {"embeddings": stored.embeddings.detach().to("cpu", torch.float32).contiguous()}
        if stored.faiss is not None:
            tensors["faiss"] = stored.faiss.to("cpu", torch.uint8).contiguous()
        save_file(tensors, str(staging / TENSORS_FILE))
        with (staging / ITEMS_FILE).open("w", encoding="utf-8") as handle:
            for row_id, payload in zip(stored.ids, stored.payloads, strict=True):
                handle.write(json.dumps({"id": row_id, "payload": payload}) + "\n")
        count, dim = tensors["embeddings"].shape
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "anymodal_version": __version__,
            **stored.header,
            "count": int(count),
            "dim": int(dim),
            "has_faiss": stored.faiss is not None,
            "checksums": {
                TENSORS_FILE: _sha256(staging / TENSORS_FILE),
                ITEMS_FILE: _sha256(staging / ITEMS_FILE),
            },
        }
        (staging / HEADER_FILE).write_text(json.dumps(header, indent=2) + "\n")
        if target.exists():
            if not (target / HEADER_FILE).is_file():
                raise IndexFileError(target, "exists and is not an index folder; not replaced")
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(backup)
            staging.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_index_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``index.json`` of an index folder (nothing else is read)."""
    folder = Path(path)
    if not folder.exists():
        raise IndexFileError(folder, "no such index (expected a folder written by Index.save)")
    if not folder.is_dir() or not (folder / HEADER_FILE).is_file():
        raise IndexFileError(folder, f"is not an index folder ({HEADER_FILE} is missing)")
    try:
        header = json.loads((folder / HEADER_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFileError(folder / HEADER_FILE, f"is damaged: not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise IndexFileError(folder / HEADER_FILE, f"is not an {FORMAT_NAME} header")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFileError(folder, f"has index format version {version!r}; this anymodal "
                             f"({__version__}) reads version {FORMAT_VERSION}: rebuild it")
    for key in ("count", "dim", "checksums", "modality"):
        if key not in header:
            raise IndexFileError(folder / HEADER_FILE, f"is damaged: key {key!r} is missing")
    if not isinstance(header["checksums"], dict):
        raise IndexFileError(folder / HEADER_FILE, "is damaged: 'checksums' is not a mapping")
    return header


def _read_items(path: Path, count: int) -> tuple[list[str], list[Any]]:
    ids: list[str] = []
    payloads: list[Any] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = json.loads(line)
                ids.append(str(row["id"]))
                payloads.append(row.get("payload"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise IndexFileError(f"{path}:{number}", f"is damaged ({exc})") from None
    if len(ids) != count:
        raise IndexFileError(path, f"has {len(ids)} rows, the header says {count}")
    if len(set(ids)) != len(ids):
        raise IndexFileError(path, "has duplicate ids")
    return ids, payloads


def read_index(path: str | os.PathLike[str]) -> StoredIndex:
    """Read and verify an index folder: header, checksums, then the data.

    Raises:
        IndexFileError: naming the file at fault, when anything is missing or damaged.
    """
    folder = Path(path)
    header = read_index_header(folder)
    for name in (TENSORS_FILE, ITEMS_FILE):
        file = folder / name
        if not file.is_file():
            raise IndexFileError(folder, f"is incomplete: {name} is missing")
        expected = header["checksums"].get(name)
        if _sha256(file) != expected:
            raise IndexFileError(file, "is damaged: its SHA-256 does not match the one "
                                 f"recorded in {HEADER_FILE} (truncated or modified)")
    try:
        tensors = load_file(str(folder / TENSORS_FILE))
    except (SafetensorError, OSError) as exc:
        raise IndexFileError(folder / TENSORS_FILE, f"cannot be read ({exc})") from None
    embeddings = tensors.get("embeddings")
    count, dim = int(header["count"]), int(header["dim"])
    if embeddings is None or tuple(embeddings.shape) != (count, dim):
        shape = None if embeddings is None else tuple(embeddings.shape)
        raise IndexFileError(folder / TENSORS_FILE,
                             f"holds embeddings of shape {shape}; the header says {(count, dim)}")
    ids, payloads = _read_items(folder / ITEMS_FILE, count)
    return StoredIndex(embeddings.float(), ids, payloads, header, tensors.get("faiss"))
