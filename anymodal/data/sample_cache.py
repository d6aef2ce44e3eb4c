"""The sample cache: each item's decoded, deterministic part, stored once on disk.

A modality's ``load(source)`` decodes a file (an image, a wav, a point cloud); its
``transform`` then applies the random augmentations. With ``data.cache`` set, the loader of
every cached modality is wrapped in :class:`CachedLoad`: the first read of an item stores
what ``load`` returned, and later epochs read that instead of decoding the file again.

What is stored (the *cache form*):

- where the modality declares the deterministic prefix of its transform
  (:attr:`anymodal.types.ModalitySpec.prepare`), ``prepare(load(source))``: the audio's
  normalised log-mel features of the whole clip, the video's frames scaled to the short
  side, the point cloud's normalised (and, where deterministic, sampled) points. The
  transform accepts it in place of ``load``'s output and gives the same item from the same
  random state, so later epochs run only the random rest (crops, masks, flips, jitter);
- else ``load``'s output itself when it is made of tensors, arrays, strings, numbers,
  ``None``, lists/tuples/dicts and dataclasses of those (the graph's ``RawGraph``);
- else, where the raw value is a lazy handle, its ``cache_form()`` method: a *source* that
  ``load`` accepts again and that needs no decoding.

A value that holds something else (a lazy reader of a file too long to hold whole) is not
stored: the item is served uncached, every epoch.

Keys: an entry is found by the modality's *namespace* (a hash of its name and bound
options, so a changed option never serves stale data) and the item's key (a file: its
path, size and modification time in nanoseconds; inline content: a hash of it).

Format: one safetensors file per item under ``<dir>/<modality>/<namespace>/<k[:2]>/``,
written through :func:`anymodal.utils.atomic.atomic_write_bytes` (two processes filling one
cache write the same bytes; the last rename wins, never a torn file). Its metadata holds the
structure (JSON) and a CRC-32 checksum over structure and tensor bytes; an entry whose
checksum or header does not match is deleted and rebuilt from the source, never returned.
Never pickle: dataclasses are rebuilt only from classes already imported and named in the
entry, field by field.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymodal.errors import ConfigError
from anymodal.types import ModalitySpec
from anymodal.utils.atomic import atomic_write_bytes, discard

__all__ = ["FORMAT_VERSION", "CachedLoad", "Uncacheable", "decode_entry", "encode_entry",
           "entry_path", "item_key", "namespace", "with_sample_cache"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: prepared entries (the transform's deterministic prefix)
SUFFIX = ".safetensors"


class Uncacheable(TypeError):
    """A value the cache cannot store (a callable, an open file...)."""


# ---------------------------------------------------------------- values <-> tensors + tree

def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The JSON tree of ``value``; its tensors go into ``tensors`` under numbered names."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"v": value}
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().cpu().contiguous()
        return {"tensor": name}
    if isinstance(value, np.ndarray):
        name = f"t{len(tensors)}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
        return {"ndarray": name}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list":
                [_encode(v, tensors) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, tensors) for k, v in value.items()}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(value, f.name), tensors)
                           for f in dataclasses.fields(value) if f.init}}
    raise Uncacheable(f"cannot store a {type(value).__name__}")


def _dataclass(path: str) -> type:
    """The dataclass ``module:qualname``, only from a module already imported."""
    module_name, _, qualname = path.partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ValueError(f"entry names {path!r}, which is not a loaded dataclass")
    return obj


def _decode(node: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Rebuild a value from its tree (:func:`_encode`)."""
    if "v" in node:
        return node["v"]
    if "tensor" in node:
        return tensors[node["tensor"]]
    if "ndarray" in node:
        return tensors[node["ndarray"]].numpy()
    if "list" in node:
        return [_decode(v, tensors) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, tensors) for v in node["tuple"])
    if "dict" in node:
        return {k: _decode(v, tensors) for k, v in node["dict"].items()}
    if "dataclass" in node:
        cls = _dataclass(node["dataclass"])
        return cls(**{k: _decode(v, tensors) for k, v in node["fields"].items()})
    raise ValueError(f"unknown node {sorted(node)}")


def _checksum(tree: str, tensors: Mapping[str, torch.Tensor]) -> str:
    """CRC-32 over structure, tensor headers and tensor bytes.

    The checksum guards against damage (torn writes, flipped bits), not against an
    attacker (entries are never unpickled): CRC-32 runs ~4.5x faster than BLAKE2b here,
    which matters for large entries (a 10 s video's prepared frames: 65 MB).
    """
    crc = zlib.crc32(tree.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name]
        crc = zlib.crc32(f"{name}:{t.dtype}:{list(t.shape)};".encode(), crc)
        if t.numel():  # a uint8 view of the buffer, not a copy (bfloat16 has no numpy type)
            crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy().data, crc)
    return f"crc32:{crc:08x}"


def encode_entry(kind: str, value: Any) -> bytes:
    """The bytes of one entry: a safetensors file whose metadata holds tree and checksum.

    Args:
        kind: ``raw`` (``load``'s output), ``prepared`` (``prepare``'s output) or
            ``source`` (a source ``load`` accepts).
        value: what to store.

    Raises:
        Uncacheable: ``value`` holds something that is not data.
    """
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    tree = json.dumps({"kind": kind, "value": _encode(value, tensors)}, ensure_ascii=False)
    meta = {"tree": tree, "checksum": _checksum(tree, tensors),
            "format": str(FORMAT_VERSION)}
    return save(tensors, metadata=meta)


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
           "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
           "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def _parse(data: bytearray) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (views of ``data``, no copy) and metadata of a safetensors file's bytes.

    Reading a large entry (a video's prepared frames) this way saves the copy that
    ``safetensors.torch.load`` makes; the layout is the documented one: a little-endian
    u64 header length, a JSON header of dtype, shape and data offsets, the data.
    """
    header_len = int.from_bytes(data[:8], "little")
    if not 2 <= header_len <= len(data) - 8:
        raise ValueError(f"header length {header_len} outside the {len(data)}-byte file")
    header = json.loads(data[8:8 + header_len])
    base, tensors = 8 + header_len, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = _DTYPES[info["dtype"]], [int(n) for n in info["shape"]]
        start, end = (base + int(o) for o in info["data_offsets"])
        size = torch.Size(shape).numel() * dtype.itemsize
        if not (base <= start <= end <= len(data) and end - start == size):
            raise ValueError(f"tensor {name!r}: offsets outside the file or of the wrong size")
        raw = torch.frombuffer(data, dtype=torch.uint8, count=size, offset=start) if size \
            else torch.empty(0, dtype=torch.uint8)
        if start % dtype.itemsize:  # unaligned for its dtype: copied once
            raw = raw.clone()
        tensors[name] = raw.view(dtype).reshape(shape)
    return tensors, header.get("__metadata__") or {}


def decode_entry(data: bytes | bytearray) -> tuple[str, Any]:
    """``(kind, value)`` of an entry's bytes (a ``bytearray`` is read without a copy).

    Raises:
        ValueError: the entry is damaged (unreadable header, checksum mismatch).
    """
    try:
        tensors, meta = _parse(data if isinstance(data, bytearray) else bytearray(data))
    except Exception as exc:  # any malformed header: the entry is damaged
        raise ValueError(f"unreadable entry ({type(exc).__name__}: {exc})") from None
    tree = meta.get("tree")
    if not isinstance(tree, str) or meta.get("checksum") != _checksum(tree, tensors):
        raise ValueError("checksum mismatch")
    node = json.loads(tree)
    return node["kind"], _decode(node["value"], tensors)


# ---------------------------------------------------------------- keys and paths

@functools.cache
def _distribution_versions(module: str) -> str:
    """``name==version`` of the installed distributions that provide ``module``'s package."""
    top = module.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    return ",".join(sorted({f"{n}=={importlib.metadata.version(n)}" for n in names}))


def namespace(spec: ModalitySpec) -> str:
    """A hash of the modality's name, bound options, its code's version and the format's.

    A new release of the plugin that reads the files (its distribution's version) starts
    a new namespace too, so that a changed decoder never serves entries of the old one; so
    does a change of the declared prefix (``spec.prepare``: its name is in the hash).

    Args:
        spec: the bound modality.
    """
    config = spec.config
    options = (dataclasses.asdict(config)
               if dataclasses.is_dataclass(config) and not isinstance(config, type) else config)
    load = getattr(spec.load, "func", spec.load)
    code = _distribution_versions(str(getattr(load, "__module__", None) or ""))
    prepare = getattr(spec.prepare, "func", spec.prepare)
    prefix = None if prepare is None else (f"{getattr(prepare, '__module__', '')}:"
                                           f"{getattr(prepare, '__qualname__', '')}")
    text = json.dumps({"modality": spec.name, "options": options, "format": FORMAT_VERSION,
                       "code": code, "prepare": prefix}, sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def item_key(source: Any) -> str | None:
    """The key of one resolved source, or ``None`` for one the cache does not keep.

    A file (an absolute path, as :func:`anymodal.data.sources.resolve_source` gives it) is
    keyed by its path, size and modification time; inline text or bytes by their content.

    Args:
        source: the resolved source handed to ``load``.
    """
    if isinstance(source, str) and os.path.isabs(source):
        try:
            st = os.stat(source)
        except (OSError, ValueError):
            st = None
        if st is not None:
            text = f"file\0{source}\0{st.st_size}\0{st.st_mtime_ns}"
            return hashlib.blake2b(text.encode("utf-8", "surrogatepass"),
                                   digest_size=16).hexdigest()
    if isinstance(source, str):
        return hashlib.blake2b(b"text\0" + source.encode("utf-8", "surrogatepass"),
                               digest_size=16).hexdigest()
    if isinstance(source, (bytes, bytearray)):
        return hashlib.blake2b(b"bytes\0" + bytes(source), digest_size=16).hexdigest()
    return None


def entry_path(root: Path, modality_key: str, space: str, key: str) -> Path:
    """Where one item's entry lives."""
    return root / modality_key / space / key[:2] / f"{key}{SUFFIX}"


# ---------------------------------------------------------------- the cached loader

def _read(path: Path) -> tuple[str, Any] | None:
    """The entry at ``path``, or ``None`` when absent; a damaged one is deleted."""
    try:
        with open(path, "rb") as handle:
            data = bytearray(os.fstat(handle.fileno()).st_size)
            handle.readinto(data)  # a writable buffer the tensors can view
    except FileNotFoundError:
        return None
    try:
        return decode_entry(data)
    except ValueError as exc:
        log.warning("sample cache: %s is damaged (%s); rebuilding it", path, exc)
        discard(path)
        return None


@dataclass(frozen=True)
class CachedLoad:
    """A modality's ``load`` that reads and fills the sample cache (picklable).

    Args:
        load: the modality's own ``load``.
        root: the cache folder.
        modality_key: the recipe's key of the modality (its folder in the cache).
        space: the modality's :func:`namespace`.
        prepare: the modality's deterministic transform prefix (``spec.prepare``): when
            given, an entry holds ``prepare(load(source))`` and a call returns that, hit
            or miss.
    """

    load: Callable[[Any], Any]
    root: str
    modality_key: str
    space: str
    prepare: Callable[[Any], Any] | None = None

    @property
    def source_is_path(self) -> Any:
        """The wrapped loader's path rule (:func:`anymodal.data.sources.path_rule`)."""
        from anymodal.data.sources import path_rule

        return path_rule(self.load)

    def path_for(self, source: Any) -> Path | None:
        """The entry of ``source`` (``None``: not cacheable)."""
        key = item_key(source)
        return None if key is None else entry_path(Path(self.root), self.modality_key,
                                                   self.space, key)

    def __call__(self, source: Any) -> Any:
        """``load(source)``, from the cache when the entry is there and sound."""
        path = self.path_for(source)
        if path is None:
            return self.load(source)
        found = _read(path)
        if found is not None:
            kind, value = found
            return self.load(value) if kind == "source" else value
        return self._fill(path, source)

    def _cache_form(self, raw: Any) -> tuple[str, Any]:
        """``(kind, value)`` to store for ``load``'s output ``raw``."""
        if self.prepare is not None:
            return "prepared", self.prepare(raw)
        cache_form = getattr(raw, "cache_form", None)
        return ("source", cache_form()) if callable(cache_form) else ("raw", raw)

    def _fill(self, path: Path, source: Any) -> Any:
        kind, value = self._cache_form(self.load(source))
        try:
            data = encode_entry(kind, value)
        except Uncacheable as exc:
            # e.g. a lazy reader of a long file: served as it is, every epoch
            log.debug("sample cache: %s not stored: %s", source, exc)
            return self.load(value) if kind == "source" else value
        # not flushed: an entry torn by a crash fails its checksum and is rebuilt
        atomic_write_bytes(path, data, durable=False)
        # a source form is loaded again so that a miss returns what a hit returns
        return self.load(value) if kind == "source" else value


def cached_keys(modalities: Mapping[str, ModalitySpec], cache: Any) -> list[str]:
    """The modality keys the ``data.cache`` section selects (all when it names none).

    Raises:
        ConfigError: it names a modality the recipe does not have.
    """
    chosen = list(cache.get("modalities") or modalities)
    unknown = [k for k in chosen if k not in modalities]
    if unknown:
        raise ConfigError(f"data.cache.modalities names {unknown}, which the recipe does not "
                          f"have; valid: {sorted(modalities)}")
    return chosen


def with_sample_cache(modalities: Mapping[str, ModalitySpec], cache: Any | None
                      ) -> dict[str, ModalitySpec]:
    """The modalities with ``load`` wrapped in :class:`CachedLoad` where ``cache`` says.

    Args:
        modalities: recipe key -> bound modality.
        cache: the recipe's ``data.cache`` (``{dir, modalities}``), or ``None``: unchanged.
    """
    if cache is None:
        return dict(modalities)
    if not cache.get("dir"):
        raise ConfigError("data.cache needs a 'dir' (the folder the sample cache lives in)")
    root = str(Path(cache["dir"]).expanduser().resolve())
    chosen = cached_keys(modalities, cache)
    return {key: (dataclasses.replace(spec, load=CachedLoad(spec.load, root, key,
                                                            namespace(spec), spec.prepare))
                  if key in chosen else spec)
            for key, spec in modalities.items()}
