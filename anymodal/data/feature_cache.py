"""The frozen-feature cache: a frozen encoder's output per item, computed once.

A modality whose encoder is frozen (``modalities.<key>.freeze: true``, no LoRA, no
trainable layers) and whose transform is deterministic gives the same encoder feature for
an item at every epoch. With ``data.feature_cache`` set, :func:`with_feature_cache` wraps
that modality's ``load``, ``transform`` and ``collate``:

- ``load`` looks the item up first. A hit returns the stored feature (:class:`FeatureHit`)
  and nothing is decoded or transformed; a miss loads as before (through the sample cache
  when there is one) and remembers where the feature will go.
- ``collate`` makes a :class:`FeatureBatch`: the features of the hits and the misses'
  items (collated when encoded, so that GradCache and the overflow guard can cut the
  batch into rows).
- The model (:meth:`anymodal.model.MultiModalModel.encode`) asks the batch for its
  features (``anymodal_features(encoder)``): the encoder runs on the misses only, their
  features are written, and hits and misses are put back in row order. A batch of misses
  only is encoded exactly as without the cache, so the first pass is identical; an item's
  feature, once stored, is the one every later batch reads (also batches loaded ahead).

Exactness: the stored feature is bit for bit the one the encoder gave in the batch that
first met the item. Training with the cache therefore gives the losses and gradients of
training without it exactly where the encoder's output for a row does not depend on the
other rows of its batch (tested); where it does in its last bits (BLAS kernels chosen by
the batch's size, a padded length), the difference is of that size (measured for MiniLM
in ``benchmarks/results/feature_cache.md``).

Keys: an entry is found by the item's key (:func:`anymodal.data.sample_cache.item_key`: a
file's path, size and modification time; inline content by a hash of it) under a
namespace (:func:`feature_namespace`) that hashes the modality's own sample-cache namespace
(name, options, loader code version), the encoder's name, params and code version, a hash
of its frozen weights, the torch version, the device type and the mixed precision: a
changed checkpoint, option or precision never serves another's features.

Entries use the sample cache's format (:func:`anymodal.data.sample_cache.encode_entry`: a
safetensors file with a checksum), written to a temporary name and renamed
(:func:`anymodal.utils.atomic.atomic_write_bytes`, umask permissions): two processes
filling one cache write the same entry and the last rename wins. An entry that is damaged,
or is not a finite feature of the encoder's width, is deleted and recomputed.

Deterministic transforms: a modality may declare it with a ``deterministic`` attribute on
its transform function (a bool, or ``deterministic(config) -> bool`` of its bound options;
``functools.partial`` wrappers are looked through). A declared random transform is refused
(:class:`ConfigError` naming the key) before training; an undeclared one is checked on every
miss in training: its training item must equal its evaluation item, or the run stops with a
:class:`ConfigError` naming the key and the item.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from anymodal.errors import ConfigError
from anymodal.types import ModalitySpec

from .feature_store import FeatureStore, feature_namespace
from .guard import check_finite
from .sources import path_rule

if TYPE_CHECKING:
    from anymodal.model.core import MultiModalModel

__all__ = ["FeatureBatch", "FeatureCollate", "FeatureHit", "FeatureLoad",
           "FeatureMiss", "FeatureStore", "FeatureTransform", "declared_deterministic",
           "feature_keys", "feature_namespace", "feature_stores", "same_item",
           "with_feature_cache", "wrap_specs"]


# ---------------------------------------------------------------- the wrapped modality

@dataclass(frozen=True)
class FeatureHit:
    """An item whose feature was found: nothing was decoded or transformed.

    Shapes:
        ``feature``: ``[width]``.
    """

    feature: torch.Tensor


@dataclass(frozen=True)
class FeatureMiss:
    """A transformed item whose feature is to be computed, and where it will be stored."""

    item: Any
    path: str | None


@dataclass(frozen=True)
class _Loaded:
    """What the wrapped ``load`` returns on a miss: the raw value and its entry's path."""

    raw: Any
    path: str | None
    name: str


@dataclass(frozen=True)
class FeatureLoad:
    """A modality's ``load`` that returns the stored feature when there is one (picklable).

    Args:
        load: the modality's ``load`` (possibly the sample cache's).
        store: the modality's :class:`FeatureStore`.
    """

    load: Callable[[Any], Any]
    store: FeatureStore

    @property
    def source_is_path(self) -> Any:
        """The wrapped loader's path rule (:func:`anymodal.data.sources.path_rule`)."""
        return path_rule(self.load)

    def __call__(self, source: Any) -> FeatureHit | _Loaded:
        """The stored feature of ``source``, or its raw value to transform."""
        path = self.store.path_for(source)
        if path is not None:
            feature = self.store.read(path)
            if feature is not None:
                return FeatureHit(feature)
        name = source if isinstance(source, str) and len(source) < 200 else type(source).__name__
        return _Loaded(self.load(source), path, str(name))


@dataclass(frozen=True)
class FeatureTransform:
    """A modality's ``transform`` that passes hits through (picklable).

    Args:
        transform: the modality's ``transform``.
        modality_key: the recipe key (named in errors).
        check: compare each training item with its evaluation item (the modality does not
            declare whether its transform is deterministic).
    """

    transform: Callable[[Any, bool], Any]
    modality_key: str
    check: bool

    def __call__(self, value: Any, train: bool) -> FeatureHit | FeatureMiss:
        """A hit unchanged; a miss transformed (and checked) as without the cache."""
        if isinstance(value, FeatureHit):
            return value
        if not isinstance(value, _Loaded):  # a raw value from elsewhere: never stored
            return FeatureMiss(self.transform(value, train), None)
        item = check_finite(self.transform(value.raw, train), value.name)
        if train and self.check:
            # fork_rng: the extra call must not shift the random state the run would have
            with torch.random.fork_rng(devices=[]):
                reference = self.transform(value.raw, False)
            if not same_item(item, reference):
                raise ConfigError(
                    f"data.feature_cache: modality {self.modality_key!r} has a random "
                    f"training transform (item {value.name} differs from its evaluation "
                    "form), so its encoder features cannot be computed once; turn its "
                    f"augmentation off (modalities.{self.modality_key}.options) or leave it "
                    "out of data.feature_cache.modalities")
        return FeatureMiss(item, value.path)


def same_item(a: Any, b: Any) -> bool:
    """Whether two transformed items are equal: tensors and arrays exactly, field by field."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        return (torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and np.array_equal(a, b))
    if isinstance(a, Mapping):
        return (isinstance(b, Mapping) and a.keys() == b.keys()
                and all(same_item(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same_item(x, y) for x, y in zip(a, b)))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(same_item(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    return bool(a == b)


@dataclass(frozen=True)
class FeatureCollate:
    """A modality's ``collate`` that makes a :class:`FeatureBatch` (picklable).

    Args:
        collate: the modality's ``collate``.
        store: the modality's :class:`FeatureStore`.
    """

    collate: Callable[[list[Any]], Any]
    store: FeatureStore

    def __call__(self, items: list[Any]) -> FeatureBatch:
        """Stack the hits' features; the misses are collated when they are encoded."""
        hit = torch.tensor([isinstance(i, FeatureHit) for i in items], dtype=torch.bool)
        features = (torch.stack([i.feature for i in items if isinstance(i, FeatureHit)])
                    if bool(hit.any()) else None)
        misses = [i if isinstance(i, FeatureMiss) else FeatureMiss(i, None)
                  for i in items if not isinstance(i, FeatureHit)]
        return FeatureBatch(hit, features, misses, self.collate, self.store)


class FeatureBatch:
    """One modality's rows: stored features of the hits, the misses' items.

    The model calls :meth:`anymodal_features` with the modality's frozen encoder in place
    of ``encoder(collated)``. The misses are collated there, not in the loader, so that the
    batch can be cut into rows (:meth:`index_select`, :meth:`from_data_list`: the protocol
    of PyTorch Geometric's ``Batch``, by which GradCache's micro-batches and the overflow
    guard cut a collated value).

    Args:
        hit: which rows were found in the cache.
        features: the features of those rows (``None``: no hit).
        misses: the other rows' items and entry paths, in row order.
        collate: the modality's ``collate``.
        store: the modality's store.
        device: where the features go (:meth:`to` sets it).

    Shapes:
        ``hit``: ``[B]``; ``features``: ``[B_hit, width]``.
    """

    def __init__(self, hit: torch.Tensor, features: torch.Tensor | None,
                 misses: list[FeatureMiss], collate: Callable[[list[Any]], Any],
                 store: FeatureStore, device: torch.device | str = "cpu") -> None:
        self.hit = hit
        self.features = features
        self.misses = misses
        self.collate = collate
        self.store = store
        self.device = torch.device(device)

    def __len__(self) -> int:
        """Rows of the batch."""
        return int(self.hit.numel())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FeatureBatch:
        """The batch on ``device`` (Accelerate's ``send_to_device`` calls this)."""
        features = (None if self.features is None
                    else self.features.to(device, non_blocking=non_blocking))
        return FeatureBatch(self.hit, features, self.misses, self.collate, self.store, device)

    def index_select(self, index: slice | Sequence[int] | torch.Tensor) -> list[FeatureBatch]:
        """Rows ``index`` of the batch, one single-row batch each.

        Join them with :meth:`from_data_list`; no row gives one empty batch.
        """
        rows = (list(range(len(self)))[index] if isinstance(index, slice)
                else [int(i) for i in index])
        hits = self.hit.tolist()
        hit_at = (self.hit.long().cumsum(0) - 1).tolist()
        miss_at = ((~self.hit).long().cumsum(0) - 1).tolist()
        parts = []
        for row in rows:
            if hits[row]:
                assert self.features is not None
                parts.append(self._part(torch.ones(1, dtype=torch.bool),
                                        self.features[hit_at[row]:hit_at[row] + 1], []))
            else:
                parts.append(self._part(torch.zeros(1, dtype=torch.bool), None,
                                        [self.misses[miss_at[row]]]))
        return parts or [self._part(torch.zeros(0, dtype=torch.bool), None, [])]

    def _part(self, hit: torch.Tensor, features: torch.Tensor | None,
              misses: list[FeatureMiss]) -> FeatureBatch:
        return FeatureBatch(hit, features, misses, self.collate, self.store, self.device)

    @classmethod
    def from_data_list(cls, parts: Sequence[FeatureBatch]) -> FeatureBatch:
        """The rows of ``parts``, in order, as one batch."""
        if not parts:
            raise ValueError("FeatureBatch.from_data_list needs at least one batch")
        features = [p.features for p in parts if p.features is not None]
        first = parts[0]
        return cls(torch.cat([p.hit for p in parts]),
                   torch.cat(features) if features else None,
                   [m for p in parts for m in p.misses], first.collate, first.store,
                   first.device)

    def anymodal_features(self, encoder: Callable[[Any], torch.Tensor]) -> torch.Tensor:
        """Every row's feature: stored ones read, missing ones computed by ``encoder`` and stored.

        Args:
            encoder: the modality's frozen encoder.

        Shapes:
            output ``[B, width]``.
        """
        if not self.misses:
            assert self.features is not None, "a FeatureBatch without rows has no features"
            return self.features
        computed = self._misses(encoder)
        if self.features is None:  # all misses: the uncached computation
            return computed
        out = computed.new_empty((len(self), computed.shape[1]))
        hit = self.hit.to(computed.device)
        out[hit] = self.features.to(device=computed.device, dtype=computed.dtype)
        out[~hit] = computed
        return out

    def _misses(self, encoder: Callable[[Any], torch.Tensor]) -> torch.Tensor:
        """The misses' features: stored since the batch was loaded, or computed and stored.

        A loader reads ahead (Accelerate looks one batch ahead, workers prefetch), so the
        first batches of an epoch were loaded before the last steps of the one before had
        stored their features. An item's feature, once stored, is the one every later batch
        gets: the batch it was computed in decides its last bits (BLAS kernels differ with
        the batch's size and the rows around it), and the same item must not change them.

        Shapes:
            output ``[B_miss, width]``.
        """
        from accelerate.utils import send_to_device

        stored = [None if m.path is None else self.store.read(m.path) for m in self.misses]
        if all(feature is not None for feature in stored):
            return torch.stack([f for f in stored if f is not None]).to(self.device)
        collated = send_to_device(self.collate([m.item for m in self.misses]), self.device)
        with torch.no_grad():  # frozen: no parameter takes a gradient through it anyway
            computed = encoder(collated)
        for row, (miss, feature) in enumerate(zip(self.misses, stored)):
            if feature is not None:
                computed[row] = feature.to(device=computed.device, dtype=computed.dtype)
            elif miss.path is not None:
                self.store.write(miss.path, computed[row])
        return computed


# ---------------------------------------------------------------- wiring a recipe

def declared_deterministic(spec: ModalitySpec) -> bool | None:
    """What the modality declares about its transform (``None``: nothing).

    Args:
        spec: the bound modality.
    """
    for fn in (spec.transform, getattr(spec.transform, "func", None)):
        flag = getattr(fn, "deterministic", None)
        if flag is not None:
            return bool(flag(spec.config)) if callable(flag) else bool(flag)
    return None


def feature_keys(model: MultiModalModel, cache: Any) -> list[str]:
    """The modality keys whose features ``data.feature_cache`` caches, checked.

    Raises:
        ConfigError: a key the recipe does not have, one that is not frozen (or has LoRA
            or trainable layers), or one whose transform is declared random.
    """
    named = cache.get("modalities")
    chosen = [str(k) for k in named] if named else [k for k in model.modalities
                                                     if k in model.frozen]
    if not chosen:
        raise ConfigError("data.feature_cache is set but no modality is frozen; set "
                          "modalities.<key>.freeze: true on the ones whose features to cache")
    for key in chosen:
        if key not in model.modalities:
            raise ConfigError(f"data.feature_cache.modalities names {key!r}, which the recipe "
                              f"does not have; valid: {sorted(model.modalities)}")
        trainable = [n for n, p in model.encoders[key].named_parameters() if p.requires_grad]
        if key not in model.frozen or trainable:
            raise ConfigError(
                f"data.feature_cache: modality {key!r} is not frozen (modalities.{key}.freeze "
                "must be true, with no lora and no trainable layers), so its encoder's "
                "features change as it trains and cannot be cached")
        if declared_deterministic(model.modalities[key]) is False:
            raise ConfigError(
                f"data.feature_cache: modality {key!r} declares a random training transform "
                f"with its options {model.config.modalities[key].options}; turn its "
                "augmentation off or leave it out of data.feature_cache.modalities")
    return chosen


def feature_stores(model: MultiModalModel, cache: Any, device_type: str, precision: str
                   ) -> dict[str, FeatureStore]:
    """The :class:`FeatureStore` of each cached modality (its encoder's weights hashed).

    Args:
        model: the model (its encoders as they are now).
        cache: the recipe's ``data.feature_cache`` (``{dir, modalities}``).
        device_type: the device the encoders run on (``cpu``, ``cuda``).
        precision: ``train.mixed_precision``.
    """
    if not cache.get("dir"):
        raise ConfigError("data.feature_cache needs a 'dir' (the folder the features live in)")
    root = str(Path(cache["dir"]).expanduser().resolve())
    _writable(root)
    stores = {}
    for key in feature_keys(model, cache):
        params = model.config.modalities[key].params
        space = feature_namespace(model.modalities[key], model.encoder_names[key],
                                  _plain(params), model.encoders[key], device_type, precision)
        encoder: Any = model.encoders[key]  # an nn.Module with an int ``width``
        stores[key] = FeatureStore(root, key, space, int(encoder.width))
    return stores


def _writable(root: str) -> None:
    """Create the cache folder, or refuse the recipe naming the key."""
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"data.feature_cache.dir {root!r} cannot be created "
                          f"({exc.strerror or exc})") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(f"data.feature_cache.dir {root!r} is not writable; the features "
                          "computed in the first pass are stored there")


def _plain(node: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return dict(OmegaConf.to_container(node, resolve=True) or {})  # type: ignore[arg-type]


def with_feature_cache(specs: Mapping[str, ModalitySpec], model: MultiModalModel,
                       cache: Any | None, device_type: str = "cpu", precision: str = "no"
                       ) -> dict[str, ModalitySpec]:
    """``specs`` with the cached modalities' load, transform and collate wrapped.

    Args:
        specs: recipe key -> bound modality, as the datasets will use them (possibly with
            the sample cache's loads).
        model: the model whose frozen encoders the features come from.
        cache: the recipe's ``data.feature_cache``, or ``None``: ``specs`` unchanged.
        device_type: the device the encoders run on.
        precision: ``train.mixed_precision``.

    Raises:
        ConfigError: see :func:`feature_keys`.
    """
    if cache is None:
        return dict(specs)
    return wrap_specs(specs, model, feature_stores(model, cache, device_type, precision))


def wrap_specs(specs: Mapping[str, ModalitySpec], model: MultiModalModel,
               stores: Mapping[str, FeatureStore]) -> dict[str, ModalitySpec]:
    """``specs`` with the load, transform and collate of each key of ``stores`` wrapped.

    Args:
        specs: recipe key -> bound modality.
        model: the model (its bound modalities say whether a transform is declared).
        stores: the cached modalities' stores (:func:`feature_stores`).
    """
    out = dict(specs)
    for key, store in stores.items():
        spec = specs[key]
        check = declared_deterministic(model.modalities[key]) is None
        out[key] = dataclasses.replace(
            spec, load=FeatureLoad(spec.load, store),
            transform=FeatureTransform(spec.transform, key, check),
            collate=FeatureCollate(spec.collate, store))
    return out
