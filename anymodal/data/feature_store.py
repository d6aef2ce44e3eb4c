"""Where the frozen-feature cache keeps its entries, and under which identity.

Part of :mod:`anymodal.data.feature_cache`: an entry is found by the item's key
(:func:`anymodal.data.sample_cache.item_key`) under a namespace (:func:`feature_namespace`)
that hashes the modality's sample-cache namespace and the encoder's identity (name, params,
code version, a hash of its weights) with the torch version, the device type and the mixed
precision. Entries use the sample cache's format (:func:`anymodal.data.sample_cache.encode_entry`)
and are written to a temporary name and renamed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymodal.types import ModalitySpec
from anymodal.utils.atomic import atomic_write_bytes, discard

from .sample_cache import decode_entry, encode_entry, entry_path, item_key, namespace

__all__ = ["FEATURE_FORMAT", "KIND", "FeatureStore", "feature_namespace", "weights_digest"]

log = logging.getLogger("anymodal.data.feature_cache")

FEATURE_FORMAT = 1
KIND = "feature"


# ---------------------------------------------------------------- identity and namespace

def weights_digest(module: nn.Module) -> str:
    """A BLAKE2b hash of every tensor of ``module``'s state dict (names, dtypes, bytes).

    Args:
        module: the encoder.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, value in sorted(module.state_dict().items()):
        if not torch.is_tensor(value):
            continue
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{list(t.shape)};".encode())
        if t.numel():  # the buffer itself, no copy (bfloat16 has no numpy type: uint8 view)
            digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


@functools.cache
def _code_version(module: str) -> str:
    """``name==version`` of the distributions that provide ``module``'s top package."""
    top = module.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    return ",".join(sorted({f"{n}=={importlib.metadata.version(n)}" for n in names}))


def feature_namespace(spec: ModalitySpec, encoder_name: str, params: Mapping[str, Any],
                      encoder: nn.Module, device_type: str, precision: str) -> str:
    """The hash that every entry of one modality's features lives under.

    Args:
        spec: the bound modality (not wrapped by a cache).
        encoder_name: the registered encoder name.
        params: the encoder's params as the recipe gives them.
        encoder: the built encoder (its weights are hashed).
        device_type: ``cpu`` or ``cuda``: kernels differ in their last bits.
        precision: the run's ``train.mixed_precision``.
    """
    text = json.dumps({"modality": namespace(spec), "encoder": encoder_name,
                       "params": dict(params), "weights": weights_digest(encoder),
                       "code": _code_version(type(encoder).__module__),
                       "torch": torch.__version__, "device": device_type,
                       "precision": precision, "format": FEATURE_FORMAT},
                      sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


# ---------------------------------------------------------------- entries on disk

@dataclass(frozen=True)
class FeatureStore:
    """Where one modality's features live, and how they are read and written (picklable).

    Args:
        root: the cache folder.
        modality_key: the recipe's key of the modality (its folder in the cache).
        space: the :func:`feature_namespace`.
        width: the encoder's output width (an entry of another width is damaged).
    """

    root: str
    modality_key: str
    space: str
    width: int

    @property
    def folder(self) -> Path:
        """The folder of this namespace's entries."""
        return Path(self.root) / self.modality_key / self.space

    def path_for(self, source: Any) -> str | None:
        """The entry of a resolved source (``None``: the source has no stable key)."""
        key = item_key(source)
        return None if key is None else str(entry_path(Path(self.root), self.modality_key,
                                                       self.space, key))

    def read(self, path: str) -> torch.Tensor | None:
        """The feature stored at ``path``; ``None`` when absent or damaged (then deleted).

        Shapes:
            output ``[width]``.
        """
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return None
        try:
            kind, value = decode_entry(data)
            self._check(kind, value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("feature cache: %s is damaged (%s); recomputing it", path, exc)
            discard(path)
            return None
        return value  # type: ignore[no-any-return]

    def _check(self, kind: str, value: Any) -> None:
        if kind != KIND or not torch.is_tensor(value):
            raise ValueError(f"holds a {kind!r} entry, not a feature")
        if tuple(value.shape) != (self.width,) or not value.is_floating_point():
            raise ValueError(f"holds a {value.dtype} tensor of shape {list(value.shape)}, "
                             f"expected a float feature of width {self.width}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError("holds NaN or infinite values")

    def write(self, path: str, feature: torch.Tensor) -> None:
        """Store one feature (``[width]``) at ``path``, atomically."""
        data = encode_entry(KIND, feature.detach().cpu().contiguous())
        # not flushed: an entry torn by a crash fails its checksum and is recomputed
        atomic_write_bytes(path, data, durable=False)
