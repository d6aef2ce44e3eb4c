"""The sample cache: entries round-trip, go stale with options and files, refuse damage."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from anymodal.data.manifest import ManifestDataset
from anymodal.data.sample_cache import (
    CachedLoad,
    decode_entry,
    encode_entry,
    namespace,
    with_sample_cache,
)
from anymodal.errors import ConfigError
from anymodal.plugin_host.manager import get_modality
from anymodal.types import ModalitySpec


@dataclasses.dataclass
class _Raw:
    points: torch.Tensor
    colors: torch.Tensor | None
    source: str


class _Counting:
    """A load that counts its calls (cache misses reach it, hits do not)."""

    def __init__(self, load: Any) -> None:
        self.load = load
        self.calls = 0

    def __call__(self, source: Any) -> Any:
        self.calls += 1
        return self.load(source)


def _cached(tmp_path: Path, dim: int = 4) -> tuple[ModalitySpec, _Counting]:
    spec = get_modality("vector", dim=dim)
    counting = _Counting(spec.load)
    spec = dataclasses.replace(spec, load=counting)
    cache = OmegaConf.create({"dir": str(tmp_path / "cache"), "modalities": None})
    return with_sample_cache({"v": spec}, cache)["v"], counting


def _vector_file(path: Path, values: list[float]) -> str:
    np.save(path, np.asarray(values, dtype=np.float32))
    return str(path.resolve())


def test_entry_round_trip_keeps_structure_and_dtypes() -> None:
    value = {"a": (torch.arange(6, dtype=torch.bfloat16).reshape(2, 3), 2.5, None),
             "b": [np.arange(4, dtype=np.int16), "text", True],
             "raw": _Raw(torch.ones(3, 3), None, "x.ply")}
    kind, back = decode_entry(encode_entry("raw", value))
    assert kind == "raw"
    assert torch.equal(back["a"][0], value["a"][0]) and back["a"][0].dtype == torch.bfloat16
    assert back["a"][1:] == (2.5, None) and isinstance(back["a"], tuple)
    assert np.array_equal(back["b"][0], value["b"][0]) and back["b"][0].dtype == np.int16
    assert back["b"][1:] == ["text", True]
    assert isinstance(back["raw"], _Raw) and torch.equal(back["raw"].points, torch.ones(3, 3))


def test_hit_skips_load_and_returns_the_same_item(tmp_path: Path) -> None:
    spec, counting = _cached(tmp_path)
    source = _vector_file(tmp_path / "a.npy", [1, 2, 3, 4])
    first = spec.load(source)
    second = spec.load(source)
    assert counting.calls == 1
    assert torch.equal(first, second) and torch.equal(second, torch.tensor([1., 2, 3, 4]))


def test_changed_option_is_a_miss(tmp_path: Path) -> None:
    spec, counting = _cached(tmp_path)
    other, other_counting = _cached(tmp_path)
    noisy = dataclasses.replace(get_modality("vector", dim=4, train_noise=0.1),
                                load=other_counting)
    noisy = with_sample_cache({"v": noisy}, OmegaConf.create({"dir": str(tmp_path / "cache")})
                              )["v"]
    assert namespace(get_modality("vector", dim=4)) != namespace(
        get_modality("vector", dim=4, train_noise=0.1))
    source = _vector_file(tmp_path / "a.npy", [1, 2, 3, 4])
    spec.load(source)
    noisy.load(source)
    other.load(source)  # same options as the first: a hit
    assert counting.calls == 1 and other_counting.calls == 1


def test_changed_file_is_a_miss(tmp_path: Path) -> None:
    spec, counting = _cached(tmp_path)
    source = _vector_file(tmp_path / "a.npy", [1, 2, 3, 4])
    assert torch.equal(spec.load(source), torch.tensor([1., 2, 3, 4]))
    _vector_file(tmp_path / "a.npy", [5, 6, 7, 8])
    stat = os.stat(source)  # a rewrite within the clock's tick still changes the key
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert torch.equal(spec.load(source), torch.tensor([5., 6, 7, 8]))
    assert counting.calls == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_damaged_entry_is_refused_and_rebuilt(tmp_path: Path, damage: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    spec, counting = _cached(tmp_path)
    source = _vector_file(tmp_path / "a.npy", [1, 2, 3, 4])
    spec.load(source)
    assert isinstance(spec.load, CachedLoad)
    entry = spec.load.path_for(source)
    assert entry is not None and entry.is_file()
    data = bytearray(entry.read_bytes())
    if damage == "flip":
        data[-3] ^= 0x40  # inside the last float: a valid file with a wrong value
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray()
    entry.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        again = spec.load(source)
    assert torch.equal(again, torch.tensor([1., 2, 3, 4]))
    assert counting.calls == 2 and "damaged" in caplog.text
    assert decode_entry(entry.read_bytes())[0] == "raw"  # rebuilt, sound


def _fill(args: tuple[str, list[str]]) -> list[list[float]]:
    root, sources = args
    spec = with_sample_cache({"v": get_modality("vector", dim=4)},
                             OmegaConf.create({"dir": root}))["v"]
    return [spec.load(s).tolist() for s in sources for _ in range(2)]


def test_two_processes_fill_one_cache(tmp_path: Path) -> None:
    sources = [_vector_file(tmp_path / f"{i}.npy", [i, i + 1, i + 2, i + 3])
               for i in range(40)]
    expected = [[float(i + j) for j in range(4)] for i in range(40) for _ in range(2)]
    root = str(tmp_path / "cache")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        # the second process reads the list backwards: the two meet in the middle
        results = pool.map(_fill, [(root, sources), (root, sources[::-1])])
    assert results[0] == expected
    assert results[1] == [[float(i + j) for j in range(4)] for i in reversed(range(40))
                          for _ in range(2)]
    entries = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(entries) == 40
    assert not [p for p in (tmp_path / "cache").rglob(".*")]  # no staging left over
    for entry in entries:
        decode_entry(entry.read_bytes())


def test_manifest_rows_load_through_the_cache(tmp_path: Path) -> None:
    rows = [{"id": str(i), "v": f"{i}.npy"} for i in range(3)]
    for i in range(3):
        _vector_file(tmp_path / f"{i}.npy", [i, 0, 0, 0])
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec, counting = _cached(tmp_path)
    dataset = ManifestDataset(tmp_path / "m.jsonl", {"v": spec}, train=False)
    first = [dataset[i]["items"]["v"] for i in range(3)]
    second = [dataset[i]["items"]["v"] for i in range(3)]
    assert counting.calls == 3
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_cache_naming_an_unknown_modality_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.cache\.modalities names"):
        with_sample_cache({"v": get_modality("vector")},
                          OmegaConf.create({"dir": str(tmp_path), "modalities": ["image"]}))


# ---------------------------------------------------------------- declared transform prefix

@dataclasses.dataclass
class _Halved:
    values: torch.Tensor


class _CountingPrepare:
    """A ``prepare`` that halves a vector and counts its calls (picklable)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, raw: Any) -> Any:
        self.calls += 1
        return _Halved(raw * 0.5)


def _prepared(tmp_path: Path, prepare: Any) -> tuple[ModalitySpec, _Counting]:
    spec = get_modality("vector", dim=4)
    counting = _Counting(spec.load)
    spec = dataclasses.replace(spec, load=counting, prepare=prepare)
    cache = OmegaConf.create({"dir": str(tmp_path / "cache")})
    return with_sample_cache({"v": spec}, cache)["v"], counting


def test_a_declared_prefix_is_stored_and_served_hit_or_miss(tmp_path: Path) -> None:
    prepare = _CountingPrepare()
    spec, counting = _prepared(tmp_path, prepare)
    source = _vector_file(tmp_path / "a.npy", [2, 4, 6, 8])
    miss, hit = spec.load(source), spec.load(source)
    assert isinstance(miss, _Halved) and isinstance(hit, _Halved)
    assert torch.equal(miss.values, hit.values) and torch.equal(hit.values,
                                                                torch.tensor([1., 2, 3, 4]))
    assert counting.calls == 1 and prepare.calls == 1  # the hit neither loads nor prepares
    assert isinstance(spec.load, CachedLoad)
    entry = spec.load.path_for(source)
    assert entry is not None and decode_entry(entry.read_bytes())[0] == "prepared"


def _other_prepare(raw: Any) -> Any:
    return raw


def test_a_declared_or_changed_prefix_is_a_new_namespace() -> None:
    spec = get_modality("vector", dim=4)
    spaces = {namespace(spec), namespace(dataclasses.replace(spec, prepare=_CountingPrepare())),
              namespace(dataclasses.replace(spec, prepare=_other_prepare))}
    assert len(spaces) == 3


class _Lazy:
    """Stands for a prefix too large to hold (a reader of a long file): not data."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.read = lambda: raw


def test_a_prefix_that_is_not_data_is_served_uncached(tmp_path: Path) -> None:
    spec, counting = _prepared(tmp_path, _Lazy)
    source = _vector_file(tmp_path / "a.npy", [1, 2, 3, 4])
    first, second = spec.load(source), spec.load(source)
    assert isinstance(first, _Lazy) and isinstance(second, _Lazy)
    assert torch.equal(second.read(), torch.tensor([1., 2, 3, 4]))
    assert counting.calls == 2  # not stored: loaded every time
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_a_streamed_split_is_refused(tmp_path: Path) -> None:
    """A shard hands items over as fresh temporary files: every epoch would add entries
    that are never read (the cache would only grow), so the recipe is refused."""
    from anymodal.config import load_config
    from tests.conftest import REPO

    recipe = REPO / "recipes" / "smoke_clip.yaml"
    with pytest.raises(ConfigError, match=r"data\.cache cannot serve data\.train\.kind "
                                          r"'webdataset'.*data\.cache: null"):
        load_config(recipe, ["data.train.kind=webdataset", f"data.train.path={tmp_path}/s.tar",
                             f"data.cache.dir={tmp_path / 'cache'}"])
    load_config(recipe, [f"data.cache.dir={tmp_path / 'cache'}"])  # synthetic splits: fine
