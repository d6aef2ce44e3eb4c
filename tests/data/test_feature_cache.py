"""The frozen-feature cache: exact training, keys that go stale, damage refused, refusals."""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from anymodal.config import load_config
from anymodal.data.build import build_dataloader
from anymodal.data.feature_cache import (
    FeatureBatch,
    FeatureLoad,
    feature_stores,
    with_feature_cache,
)
from anymodal.data.manifest import ManifestDataset
from anymodal.data.sample_cache import decode_entry, encode_entry
from anymodal.errors import ConfigError
from anymodal.model import MultiModalModel

ROWS = 32
BATCH = 8
DIM = 32


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: a row's feature then does not depend on the rest of its batch.

    (With two, BLAS splits a batch's rows between threads by the batch's size, so the
    same row computed in batches of other sizes may differ in its last bits; the exactness
    asserted here is that of the cache, not of the BLAS library.)
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _manifest(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(ROWS):
        for key in "abc":
            np.save(folder / f"{key}{i}.npy", rng.normal(size=DIM).astype(np.float32))
        rows.append({"id": f"r{i}", "a": f"a{i}.npy", "b": f"b{i}.npy", "c": f"c{i}.npy"})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def _config(folder: Path, cache: Path | None, *extra: str) -> DictConfig:
    items = ["model.embed_dim=16", "data.val=null", f"data.batch_size={BATCH}",
             "data.train.kind=manifest", f"data.train.path={folder / 'train.jsonl'}",
             "modalities.a.freeze=true"]
    for index, key in enumerate("abc"):
        items += [f"modalities.{key}.modality=vector",
                  f"modalities.{key}.options.view_seed={index + 1}",
                  f"modalities.{key}.params.width=32", f"modalities.{key}.params.hidden=32"]
    if cache is not None:
        items.append(f"data.feature_cache.dir={cache}")
    return load_config(None, [*items, *extra])


class _Rows:
    """Counts the rows a frozen encoder is run on (hits never reach it)."""

    def __init__(self, model: MultiModalModel, key: str = "a") -> None:
        self.rows = 0
        model.encoders[key].register_forward_hook(self._hook)

    def _hook(self, module: Any, inputs: Any, output: torch.Tensor) -> None:
        self.rows += int(output.shape[0])


def _model(config: DictConfig, seed: int = 0) -> MultiModalModel:
    torch.manual_seed(seed)
    return MultiModalModel(config).train()


def _loader(config: DictConfig, model: MultiModalModel, train: bool = True,
            epochs: int = 5) -> Any:
    specs = with_feature_cache(model.modalities, model, config.data.get("feature_cache"),
                               "cpu", str(config.train.mixed_precision))
    dataset = ManifestDataset(config.data.train.path, specs, train=train, on_error="raise")
    return build_dataloader(dataset, specs, BATCH, shuffle=train, seed=0, epochs=epochs,
                            drop_last=False)


def _steps(config: DictConfig, steps: int = 20, micro_batch: int = 0
           ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], int]:
    """Losses, gradients of the trainable parameters and rows the frozen encoder ran on.

    With ``micro_batch``, each step goes through GradCache in micro-batches of that size.
    """
    from anymodal.training.gradcache import gradcache_step

    model = _model(config)
    counter = _Rows(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses, grads = [], []
    for batch in itertools.islice(_loader(config, model), steps):
        if micro_batch:
            out = gradcache_step(model, batch, micro_batch)
        else:
            out = model(batch, return_loss=True)
            out["loss"].backward()
        losses.append(out["loss"].detach().clone())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return losses, grads, counter.rows


def _assert_same_steps(plain: tuple, cached: tuple) -> None:
    """Every step's loss and every parameter's gradient equal bit for bit."""
    for step, (a, b) in enumerate(zip(plain[0], cached[0])):
        assert torch.equal(a, b), f"step {step}: loss {a} != {b}"
    for a, b in zip(plain[1], cached[1]):
        assert all(torch.equal(a[name], b[name]) for name in a)


def _features(config: DictConfig, model: MultiModalModel) -> torch.Tensor:
    """Every row's feature of ``a`` in manifest order, through the cache."""
    model.eval()
    with torch.no_grad():
        return torch.cat([batch["a"].anymodal_features(model.encoders["a"])
                          for batch in _loader(config, model, train=False)])


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.safetensors"))


def test_losses_and_gradients_match_training_without_the_cache(tmp_path: Path) -> None:
    _manifest(tmp_path)
    cache = tmp_path / "features"
    plain_losses, plain_grads, plain_rows = _steps(_config(tmp_path, None))
    losses, grads, rows = _steps(_config(tmp_path, cache))
    # 20 steps of 8 rows: 5 epochs of 32 rows; the frozen tower ran on the first only
    assert plain_rows == 20 * BATCH and rows == ROWS
    assert len(_entries(cache)) == ROWS
    for step, (a, b) in enumerate(zip(plain_losses, losses)):
        assert torch.equal(a, b), f"step {step}: loss {a} != {b}"
    for step, (a, b) in enumerate(zip(plain_grads, grads)):
        assert a.keys() == b.keys() and "encoders.b.net.0.weight" in a
        assert not any(k.startswith("encoders.a.") for k in a)  # frozen: no gradient
        for name in a:
            assert torch.equal(a[name], b[name]), f"step {step}: gradient of {name} differs"


def test_features_equal_the_encoders_output(tmp_path: Path) -> None:
    _manifest(tmp_path)
    config = _config(tmp_path, tmp_path / "features")
    model = _model(config)
    first, second = _features(config, model), _features(config, model)  # computed, then read
    vectors = torch.stack([torch.from_numpy(np.load(tmp_path / f"a{i}.npy"))
                           for i in range(ROWS)])
    with torch.no_grad():
        direct = model.encoders["a"](vectors)
    assert torch.allclose(first, direct, atol=1e-6, rtol=0)
    assert torch.equal(first, second)


def test_a_hit_decodes_nothing(tmp_path: Path) -> None:
    _manifest(tmp_path)
    config = _config(tmp_path, tmp_path / "features")
    model = _model(config)
    _features(config, model)
    batch = next(iter(_loader(config, model, train=False)))
    assert isinstance(batch["a"], FeatureBatch) and bool(batch["a"].hit.all())
    assert batch["a"].misses == []
    assert not isinstance(batch["b"], FeatureBatch)  # only frozen keys are cached


@pytest.mark.parametrize("change", [
    "modalities.a.options.noise=0.5",      # a modality option
    "modalities.a.params.hidden=48",       # an encoder param
    "weights",                             # another checkpoint of the same encoder
    "train.mixed_precision=bf16",          # the precision the features were computed at
])
def test_a_changed_identity_is_a_miss(tmp_path: Path, change: str) -> None:
    _manifest(tmp_path)
    cache = tmp_path / "features"
    config = _config(tmp_path, cache)
    model = _model(config)
    _features(config, model)
    other_config = config if change == "weights" else _config(tmp_path, cache, change)
    other = _model(other_config, seed=1 if change == "weights" else 0)
    precision = str(other_config.train.mixed_precision)
    old = feature_stores(model, config.data.feature_cache, "cpu", "no")["a"]
    new = feature_stores(other, other_config.data.feature_cache, "cpu", precision)["a"]
    assert old.space != new.space
    counter = _Rows(other)
    _features(other_config, other)
    assert counter.rows == ROWS  # nothing served from the first model's entries
    assert len(_entries(cache)) == 2 * ROWS


def test_other_devices_have_their_own_features(tmp_path: Path) -> None:
    _manifest(tmp_path)
    config = _config(tmp_path, tmp_path / "features")
    model = _model(config)
    cpu = feature_stores(model, config.data.feature_cache, "cpu", "no")["a"]
    cuda = feature_stores(model, config.data.feature_cache, "cuda", "no")["a"]
    assert cpu.space != cuda.space


def test_a_changed_file_is_a_miss(tmp_path: Path) -> None:
    _manifest(tmp_path)
    config = _config(tmp_path, tmp_path / "features")
    model = _model(config)
    before = _features(config, model)
    source = tmp_path / "a0.npy"
    np.save(source, np.ones(DIM, dtype=np.float32))
    stat = os.stat(source)  # a rewrite within the clock's tick still changes the key
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    counter = _Rows(model)
    after = _features(config, model)
    assert counter.rows == 1  # only the changed row was encoded again
    with torch.no_grad():
        expected = model.encoders["a"](torch.ones(1, DIM))[0]
    assert torch.allclose(after[0], expected, atol=1e-6, rtol=0)
    assert torch.equal(after[1:], before[1:])


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "width", "kind", "nan"])
def test_a_damaged_entry_is_refused_and_recomputed(tmp_path: Path, damage: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    _manifest(tmp_path)
    config = _config(tmp_path, tmp_path / "features")
    model = _model(config)
    before = _features(config, model)
    specs = with_feature_cache(model.modalities, model, config.data.feature_cache)
    load = specs["a"].load
    assert isinstance(load, FeatureLoad)
    entry = Path(str(load.store.path_for(str((tmp_path / "a3.npy").resolve()))))
    data = bytearray(entry.read_bytes())
    replacement = {"flip": None, "truncate": bytes(data[: len(data) // 2]), "empty": b"",
                   "width": encode_entry("feature", torch.zeros(5)),
                   "kind": encode_entry("raw", before[3]),
                   "nan": encode_entry("feature", torch.full((32,), float("nan")))}[damage]
    if replacement is None:
        data[-3] ^= 0x40  # inside the last float: a readable file with a wrong value
        replacement = bytes(data)
    entry.write_bytes(replacement)
    counter = _Rows(model)
    with caplog.at_level("WARNING"):
        after = _features(config, model)
    assert counter.rows == 1 and "damaged" in caplog.text
    # row 3 alone is encoded by other BLAS kernels than in a batch of 8: the last bits differ
    assert torch.allclose(after, before, atol=1e-6, rtol=0)
    assert torch.equal(torch.cat([after[:3], after[4:]]), torch.cat([before[:3], before[4:]]))
    kind, value = decode_entry(entry.read_bytes())  # rewritten, sound
    assert kind == "feature" and torch.equal(value, after[3])


def _fill(args: tuple[str, str, bool]) -> list[list[float]]:
    """One process: build the model (seed 0) and read every feature, forwards or backwards."""
    folder, cache, backwards = args
    torch.set_num_threads(1)
    config = _config(Path(folder), Path(cache))
    model = _model(config)
    if backwards:  # the other process walks the rows in the opposite order
        rows = Path(folder, "train.jsonl").read_text().splitlines()[::-1]
        Path(folder, "reversed.jsonl").write_text("\n".join(rows) + "\n")
        config.data.train.path = str(Path(folder, "reversed.jsonl"))
    features = _features(config, model).tolist()
    return features[::-1] if backwards else features


def test_two_processes_fill_one_cache(tmp_path: Path) -> None:
    _manifest(tmp_path)
    cache = tmp_path / "features"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_fill, [(str(tmp_path), str(cache), False),
                                   (str(tmp_path), str(cache), True)])
    assert len(_entries(cache)) == ROWS
    assert not [p for p in cache.rglob(".*")]  # no staging file left over
    config = _config(tmp_path, cache)
    model = _model(config)
    counter = _Rows(model)
    read = _features(config, model)
    assert counter.rows == 0  # every feature was stored by one of the two
    assert torch.allclose(read, torch.tensor(results[0]), atol=1e-6, rtol=0)
    assert torch.allclose(read, torch.tensor(results[1]), atol=1e-6, rtol=0)
    for entry in _entries(cache):
        assert decode_entry(entry.read_bytes())[0] == "feature"


def test_a_modality_that_trains_is_refused(tmp_path: Path) -> None:
    _manifest(tmp_path)
    with pytest.raises(ConfigError, match=r"names 'b', whose encoder trains.*modalities\.b"):
        _config(tmp_path, tmp_path / "f", "data.feature_cache.modalities=[b]")
    with pytest.raises(ConfigError, match=r"names 'a', whose encoder trains"):
        _config(tmp_path, tmp_path / "f", "data.feature_cache.modalities=[a]",
                "modalities.a.trainable=[net.0]")
    with pytest.raises(ConfigError, match=r"names 'z', which the recipe does not have"):
        _config(tmp_path, tmp_path / "f", "data.feature_cache.modalities=[z]")
    with pytest.raises(ConfigError, match=r"cannot serve data\.train\.kind 'webdataset'"):
        _config(tmp_path, tmp_path / "f", "data.train.kind=webdataset")
    with pytest.raises(ConfigError, match=r"no modality is frozen"):
        config = _config(tmp_path, tmp_path / "f", "modalities.a.freeze=false")
        with_feature_cache(_model(config).modalities, _model(config),
                           config.data.feature_cache)


def test_a_random_transform_is_refused(tmp_path: Path) -> None:
    _manifest(tmp_path)
    # declared (the vector modality: random when train_noise > 0): refused before any row
    config = _config(tmp_path, tmp_path / "f", "modalities.a.options.train_noise=0.1")
    model = _model(config)
    with pytest.raises(ConfigError, match=r"modality 'a' declares a random training"):
        with_feature_cache(model.modalities, model, config.data.feature_cache)
    # undeclared: the first training item differs from its evaluation form
    spec = model.modalities["a"]

    def noisy(raw: torch.Tensor, train: bool) -> torch.Tensor:
        return raw + torch.randn_like(raw) if train else raw

    model.modalities["a"] = dataclasses.replace(spec, transform=noisy)
    with pytest.raises(ConfigError, match=r"modality 'a' has a random training transform"):
        next(iter(_loader(config, model)))
    # the same modality without noise declares itself deterministic: no check per item
    model = _model(_config(tmp_path, tmp_path / "f"))
    specs = with_feature_cache(model.modalities, model, config.data.feature_cache)
    assert specs["a"].transform.check is False  # type: ignore[attr-defined]


def test_a_batch_is_cut_into_rows_and_joined_again(tmp_path: Path) -> None:
    _manifest(tmp_path)
    config = _config(tmp_path, tmp_path / "features")
    model = _model(config)
    whole = _features(config, model)[:BATCH]
    # half the rows stored: a batch of hits and misses
    for path in _entries(tmp_path / "features")[::2]:
        path.unlink()
    batch = next(iter(_loader(config, model, train=False)))["a"]
    assert 0 < int(batch.hit.sum()) < BATCH
    pieces = [FeatureBatch.from_data_list(batch.index_select(slice(s, s + 3)))
              for s in range(0, BATCH, 3)]
    assert [len(p) for p in pieces] == [3, 3, 2]
    shuffled = FeatureBatch.from_data_list(batch.index_select([5, 0, 7]))
    assert len(FeatureBatch.from_data_list(batch.index_select([]))) == 0
    with torch.no_grad():
        cut = torch.cat([p.anymodal_features(model.encoders["a"]) for p in pieces])
        picked = shuffled.anymodal_features(model.encoders["a"])
    assert torch.allclose(cut, whole, atol=1e-6, rtol=0)
    assert torch.equal(picked, cut[[5, 0, 7]])  # stored by the pieces, read back


def test_gradcache_micro_batches_read_the_cache(tmp_path: Path) -> None:
    _manifest(tmp_path)
    plain = _steps(_config(tmp_path, None), steps=10, micro_batch=3)
    cached = _steps(_config(tmp_path, tmp_path / "features"), steps=10, micro_batch=3)
    assert len(_entries(tmp_path / "features")) == ROWS
    assert plain[2] == 10 * BATCH * 2 and cached[2] == ROWS  # stage 1 and 3 vs once
    _assert_same_steps(plain, cached)


def test_the_overflow_guard_takes_rows_of_a_cached_batch(tmp_path: Path) -> None:
    from anymodal.data.guard import take_rows

    _manifest(tmp_path)
    config = _config(tmp_path, tmp_path / "features")
    model = _model(config)
    whole = _features(config, model)[:BATCH]
    batch = next(iter(_loader(config, model, train=False)))
    keep = torch.tensor([True, False, True, True, False, True, True, True])
    kept = take_rows(batch, keep, list(model.encoders))
    assert isinstance(kept["a"], FeatureBatch) and len(kept["a"]) == 6
    assert torch.equal(kept["a"].anymodal_features(model.encoders["a"]), whole[keep])
    assert torch.equal(kept["b"], batch["b"][keep])


def test_build_is_resumable_and_info_counts_hits_and_stale(tmp_path: Path) -> None:
    from anymodal.data.feature_build import build_feature_cache, survey_feature_cache

    _manifest(tmp_path)
    cache = tmp_path / "features"
    config = _config(tmp_path, cache)
    model = _model(config)
    first = build_feature_cache(model, config, progress=False)
    again = build_feature_cache(model, config, progress=False)
    assert first == {"rows": ROWS, "bad_rows": 0, "hits": 0, "computed": ROWS}
    assert again == {"rows": ROWS, "bad_rows": 0, "hits": ROWS, "computed": 0}
    survey = survey_feature_cache(model, config)
    assert (survey.items, survey.hits, survey.entries) == ({"a": ROWS},) * 3
    assert survey.stale_entries == {"a": 0} and survey.bytes["a"] > 0
    other = _model(config, seed=1)  # another checkpoint: the entries above are stale
    survey = survey_feature_cache(other, config)
    assert survey.hits == {"a": 0} and survey.stale_entries == {"a": ROWS}


def test_an_unwritable_cache_folder_is_refused(tmp_path: Path) -> None:
    _manifest(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    config = _config(tmp_path, tmp_path / "file" / "features")
    with pytest.raises(ConfigError, match=r"data\.feature_cache\.dir .* cannot be created"):
        with_feature_cache(_model(config).modalities, _model(config),
                           config.data.feature_cache)
