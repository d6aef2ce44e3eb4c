"""The on-disk form of an :class:`~anymodal.retrieval.index.Index`: a folder of three files.

```
my.index/
  index.json              format version, modality, model fingerprint, sizes, checksums
  items.jsonl             one {"id": ..., "payload": ...} per row, in row order
  embeddings.safetensors  "embeddings" float32 [N, D] (+ "faiss" uint8 [B], a built
                          FAISS index serialised by faiss.serialize_index, when saved)
```

Nothing is unpickled on load. ``index.json`` holds the SHA-256 of the two data files and of
its own other fields (``header_sha256``), so a truncated or edited file, or an edited header
field such as the fingerprint, is refused before it is read; rows that are not finite are
refused too. The folder is replaced crash-safely (:mod:`anymodal.utils.atomic`): a crash
never leaves half an index, or none, where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from anymodal._version import __version__
from anymodal.errors import ArtifactError, DataError
from anymodal.utils.atomic import atomic_directory, recover
from anymodal.utils.checksums import sha256_file

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
# 2: index.json carries header_sha256, the digest of its other fields.
FORMAT_VERSION = 2
HEADER_FILE = "index.json"
ITEMS_FILE = "items.jsonl"
TENSORS_FILE = "embeddings.safetensors"


class IndexFileError(DataError, ArtifactError):
    """An index file is missing, damaged, of another version, or of another model.

    ``source`` is the index's path.
    """


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


def header_digest(header: dict[str, Any]) -> str:
    """The SHA-256 of every header field but ``header_sha256`` (canonical JSON).

    Args:
        header: the content of ``index.json``.
    """
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def write_index(path: str | os.PathLike[str], stored: StoredIndex) -> Path:
    """Write ``stored`` as an index folder at ``path`` (crash-safely); returns the path.

    ``stored.header`` supplies the descriptive keys (modality, fingerprint, backend...);
    the format, sizes and checksums are filled in here.

    Args:
        path: the index folder (replaced if it is one; another folder is refused).
        stored: the rows, ids, payloads, header and optional FAISS blob.
    """
    target = Path(path)
    if target.exists() and not (target / HEADER_FILE).is_file():
        raise IndexFileError(target, "exists and is not an index folder; not replaced")
    embeddings = stored.embeddings.detach().to("cpu", torch.float32).contiguous()
    _check_finite(embeddings, stored.ids, target)
    tensors = {"embeddings": embeddings}
    if stored.faiss is not None:
        tensors["faiss"] = stored.faiss.to("cpu", torch.uint8).contiguous()
    with atomic_directory(target) as staging:
        save_file(tensors, str(staging / TENSORS_FILE))
        with (staging / ITEMS_FILE).open("w", encoding="utf-8") as handle:
            for row_id, payload in zip(stored.ids, stored.payloads, strict=True):
                handle.write(json.dumps({"id": row_id, "payload": payload}) + "\n")
        count, dim = embeddings.shape
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "anymodal_version": __version__,
            **stored.header,
            "count": int(count),
            "dim": int(dim),
            "has_faiss": stored.faiss is not None,
            "checksums": {name: sha256_file(staging / name)
                          for name in (TENSORS_FILE, ITEMS_FILE)},
        }
        header["header_sha256"] = header_digest(header)
        (staging / HEADER_FILE).write_text(json.dumps(header, indent=2) + "\n",
                                           encoding="utf-8")
    return target


def _check_finite(embeddings: torch.Tensor, ids: list[str], source: object) -> None:
    """Refuse rows with NaN or infinite values, naming the first.

    A NaN row would otherwise be returned as a top hit.
    """
    bad = (~torch.isfinite(embeddings).all(dim=1)).nonzero().flatten()
    if bad.numel():
        first = int(bad[0])
        name = ids[first] if first < len(ids) else first
        raise IndexFileError(source, f"{bad.numel()} rows are not finite (NaN or infinite), "
                             f"the first is row {first} (id {name!r})")


def read_index_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``index.json`` of an index folder (nothing else is read).

    Args:
        path: the index folder.
    """
    folder = Path(path)
    recover(folder)  # a crash mid-replace may have left the complete copy aside
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
    _check_header_fields(header, folder / HEADER_FILE)
    return header


_FIELDS: dict[str, tuple[type, ...]] = {
    "count": (int,), "dim": (int,), "checksums": (dict,), "modality": (str,),
    "fingerprint": (str, type(None)), "header_sha256": (str,),
}


def _check_header_fields(header: dict[str, Any], source: Path) -> None:
    """Check that each field a loader relies on is present, typed and covered by the digest."""
    for key, types in _FIELDS.items():
        if key not in header:
            raise IndexFileError(source, f"is damaged: key {key!r} is missing")
        if not isinstance(header[key], types) or isinstance(header[key], bool):
            raise IndexFileError(source, f"is damaged: {key!r} is {header[key]!r}, expected "
                                 f"{' or '.join(t.__name__ for t in types)}")
    if header_digest(header) != header["header_sha256"]:
        raise IndexFileError(source, "is damaged: its fields do not match the header_sha256 "
                             "recorded with them (edited or corrupted)")
    for name in (TENSORS_FILE, ITEMS_FILE):
        if not isinstance(header["checksums"].get(name), str):
            raise IndexFileError(source, f"is damaged: no checksum for {name}")


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
        if sha256_file(file) != expected:
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
    _check_finite(embeddings, ids, folder / TENSORS_FILE)
    return StoredIndex(embeddings.float(), ids, payloads, header, tensors.get("faiss"))
