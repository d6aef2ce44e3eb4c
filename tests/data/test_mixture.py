"""Mixtures of paired data sets: sources with their own modalities, sampled by weight."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler

from anymodal.config import load_config
from anymodal.data.build import build_dataloader, build_dataset
from anymodal.data.mixture import MixtureDataset, MixtureSampler, allocate
from anymodal.data.subsets import ModalityDropout
from anymodal.errors import ConfigError
from anymodal.model import MultiModalModel
from anymodal.training import train
from anymodal.types import PRESENT_KEY
from tests.conftest import PYTHON, REPO, vector_overrides
from tests.training.interrupted_runs import sigkill_then_resume

# Source 0 pairs a with b (40 rows), source 1 pairs a with c (20 rows, weight 2).
MIXTURE = ("data.train={kind: mixture, mixing: %s, sources: ["
           "{kind: synthetic, size: 40, seed: 0, modalities: [a, b]}, "
           "{kind: synthetic, size: 20, seed: 7, modalities: [a, c], weight: 2}]}")


def _source(index: int) -> int:
    return 0 if index < 40 else 1


def test_allocate_splits_by_weight_and_sums_exactly() -> None:
    assert allocate(60, [1, 2]) == [20, 40]
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(allocate(1001, [0.3, 0.5, 0.2])) == 1001
    assert allocate(7, [1e-9, 1]) == [0, 7]


def test_ratio_epochs_draw_each_source_by_weight_without_early_repeats() -> None:
    sampler = MixtureSampler([40, 20], [1, 2], seed=3)
    order = sampler.epoch_order(0)
    counts = Counter(_source(i) for i in order)
    assert len(order) == 60 and counts == {0: 20, 1: 40}
    # The 20-row source drawn 40 times: every row twice; the 40-row one: 20 distinct rows.
    assert Counter(i for i in order if i >= 40) == {i: 2 for i in range(40, 60)}
    assert len({i for i in order if i < 40}) == 20
    # The sources are interleaved, not one after the other.
    assert {_source(i) for i in order[:10]} == {0, 1}


def test_the_order_is_a_pure_function_of_seed_and_epoch() -> None:
    a = MixtureSampler([40, 20], [1, 2], seed=3, epochs=2)
    b = MixtureSampler([40, 20], [1, 2], seed=3, epochs=2)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    first, second = a.epoch_order(4), a.epoch_order(5)
    assert first != second
    # Indices carry the epoch (for modality dropout): epoch * len(dataset) + row.
    assert list(a) == [4 * 60 + i for i in first] + [5 * 60 + i for i in second]
    assert MixtureSampler([40, 20], [1, 2], seed=4).epoch_order(4) != first


def test_batch_mixing_gives_each_global_batch_one_source() -> None:
    sampler = MixtureSampler([40, 20], [1, 1], seed=0, mixing="batch", group=8)
    order = sampler.epoch_order(0)
    assert len(order) == len(sampler) == 56  # whole global batches only
    groups = [order[i:i + 8] for i in range(0, 56, 8)]
    sources = [{_source(i) for i in g} for g in groups]
    assert all(len(s) == 1 for s in sources)
    assert Counter(next(iter(s)) for s in sources) == {0: 4, 1: 3}  # 7 batches, weights 1:1
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        MixtureSampler([3, 2], [1, 1], mixing="batch", group=8)


@pytest.mark.parametrize("mixing", ["ratio", "batch"])
def test_two_processes_split_every_global_batch_deterministically(mixing: str) -> None:
    """Accelerate's shard of the batch sampler: disjoint halves of each global batch, and
    in batch mode both processes' batches of one step come from the same source."""
    sampler = MixtureSampler([40, 20], [1, 2], seed=1, mixing=mixing, group=16)
    shards = [list(BatchSamplerShard(BatchSampler(sampler, 8, drop_last=True), 2, p))
              for p in range(2)]
    assert len(shards[0]) == len(shards[1])
    full = list(sampler)
    for step, (mine, theirs) in enumerate(zip(*shards, strict=True)):
        assert mine + theirs == full[step * 16:(step + 1) * 16]
        if mixing == "batch":
            assert len({_source(i % 60) for i in mine + theirs}) == 1


def _config(tmp_path: Path, mixing: str = "ratio", *extra: str):  # type: ignore[no-untyped-def]
    return load_config(None, [*vector_overrides(tmp_path, "clip", modalities=3),
                              MIXTURE % mixing, *extra])


def test_rows_hold_only_their_sources_modalities(tmp_path: Path) -> None:
    config = _config(tmp_path)
    model = MultiModalModel(config)
    dataset = build_dataset(config.data.train, model.modalities, True, "raise")
    assert isinstance(dataset, MixtureDataset) and len(dataset) == 60
    loader = build_dataloader(dataset, model.modalities, 8, shuffle=True, seed=0)
    seen = 0
    for batch in loader:
        present = batch[PRESENT_KEY]
        assert bool(present["a"].all())
        assert not bool((present["b"] & present["c"]).any())  # b and c never meet
        assert bool((present["b"] | present["c"]).all())
        seen += len(batch["ids"])
    assert seen == 56


def test_modality_dropout_applies_inside_a_mixture(tmp_path: Path) -> None:
    """A three-modality source hides some, a two-modality one nothing (min_present 2)."""
    config = load_config(None, [*vector_overrides(tmp_path, "clip", modalities=3),
                                "data.train={kind: mixture, sources: ["
                                "{kind: synthetic, size: 30, seed: 0}, "
                                "{kind: synthetic, size: 30, seed: 9, modalities: [a, b]}]}"])
    model = MultiModalModel(config)
    dataset = build_dataset(config.data.train, model.modalities, True, "raise")
    loader = build_dataloader(dataset, model.modalities, 6, shuffle=True, seed=0,
                              dropout=ModalityDropout(p=1.0, min_present=2, seed=0))
    kept = Counter()
    for batch in loader:
        for row, row_id in enumerate(batch["ids"]):
            kept[(row_id.startswith("syn-0-"),
                  sum(int(v[row]) for v in batch[PRESENT_KEY].values()))] += 1
    assert kept[(True, 3)] == 0 and kept[(True, 2)] > 0  # every 3-modality row hid one
    assert kept[(False, 2)] > 0 and kept[(False, 1)] == 0  # 2-modality rows: nothing


def _manifest(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        row = {"id": f"m{i}", "label": i % 3}
        for key in "abc":
            np.save(tmp_path / f"{key}{i}.npy", rng.normal(size=32).astype(np.float32))
            row[key] = f"{key}{i}.npy"
        rows.append(row)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_manifest_source_loads_only_the_modalities_it_lists(tmp_path: Path) -> None:
    path = _manifest(tmp_path)
    (tmp_path / "c3.npy").write_bytes(b"not numpy")  # never read: c is not listed
    config = load_config(None, [
        *vector_overrides(tmp_path, "clip", modalities=3),
        f"data.train={{kind: mixture, sources: [{{kind: manifest, path: '{path}', "
        "modalities: [a, b]}, {kind: synthetic, size: 8, seed: 3, modalities: [c, a]}]}"])
    model = MultiModalModel(config)
    dataset = build_dataset(config.data.train, model.modalities, True, "raise")
    rows = [dataset[i] for i in range(len(dataset))]
    assert [sorted(r["items"]) for r in rows[:12]] == [["a", "b"]] * 12
    assert [sorted(r["items"]) for r in rows[12:]] == [["a", "c"]] * 8
    assert rows[3]["label"] == 0 and rows[3]["id"] == "m3"


@pytest.mark.parametrize(("override", "match"), [
    ("data.train={kind: mixture}", "sources is empty"),
    ("data.train={kind: synthetic, sources: [{kind: synthetic}]}", "need kind: mixture"),
    ("data.train={kind: mixture, sources: [{kind: webdataset, path: x.tar}]}",
     r"sources\[0\].kind is 'webdataset'"),
    ("data.train={kind: mixture, sources: [{kind: manifest}]}", "without a 'path'"),
    ("data.train={kind: mixture, sources: [{kind: synthetic, modalities: [a, z]}]}",
     r"sources\[0\].modalities: 'z'"),
    ("data.train={kind: mixture, sources: [{kind: synthetic, weight: 0}]}",
     r"sources\[0\].weight"),
    ("data.train={kind: mixture, sources: [{kind: synthetic, wieght: 2}]}",
     r"sources\[0\].wieght"),
    ("data.train={kind: mixture, mixing: rows, sources: [{kind: synthetic}]}",
     "data.train.mixing"),
])
def test_bad_mixtures_are_config_errors(tmp_path: Path, override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, [*vector_overrides(tmp_path, "clip", modalities=3), override])


@pytest.mark.parametrize("mixing", ["ratio", "batch"])
def test_training_on_a_mixture_sees_only_the_pairs_of_its_sources(tmp_path: Path,
                                                                   mixing: str) -> None:
    result = train(_config(tmp_path, mixing, "train.max_steps=6", "data.val=null"))
    lines = [json.loads(x) for x in (result.output_dir / "metrics.jsonl").read_text()
             .splitlines()]
    rows = {k: sum(line.get(f"train/{k}", 0) for line in lines)
            for k in ("a_b_rows", "a_c_rows", "b_c_rows")}
    assert rows["a_b_rows"] > 0 and rows["a_c_rows"] > 0 and rows["b_c_rows"] == 0
    if mixing == "batch":  # one source per batch: a step trains a-b or a-c, never both
        assert all(bool(line.get("train/a_b_rows")) != bool(line.get("train/a_c_rows"))
                   for line in lines if "train/a_b_rows" in line)


@pytest.mark.slow
@pytest.mark.parametrize("mixing", ["ratio", "batch"])
def test_sigkill_then_resume_on_a_mixture_gives_the_same_weights(
        tmp_path: Path, cli_env: dict[str, str], mixing: str) -> None:
    """60 rows / batch 8: the resumed part crosses an epoch boundary of the mixture."""
    common = [MIXTURE % mixing, "data.batch_size=8", "train.max_steps=10",
              "train.checkpoint_every=4", "train.deterministic=true",
              "logging.progress=false", "train.eval_every=0", "data.val=null",
              "train.modality_dropout.p=0.5", "data.num_workers=0"]
    a, b = sigkill_then_resume(tmp_path, cli_env, common, kill_at=6, checkpoint=4, steps=10)
    for key in a:
        assert torch.equal(a[key], b[key]), (mixing, key)


@pytest.mark.slow
def test_two_gloo_processes_take_one_source_per_global_batch(tmp_path: Path,
                                                             cli_env: dict[str, str]) -> None:
    """``batch`` mixing in two processes: each step's rows (both processes) share a source;
    the group is read from the process group that Accelerate initialised."""
    run = tmp_path / "two"
    launched = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "-m", "anymodal", "train", "recipes/smoke_clip.yaml", MIXTURE % "batch",
         "data.batch_size=4", "train.max_steps=12", "train.log_every=1",
         "logging.progress=false", "data.val=null", "train.eval_every=0",
         "data.num_workers=0", f"train.output_dir={run}"],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "train/a_b_rows" in line]
    assert len(steps) == 12 and steps[0]["train/world_size"] == 2
    for line in steps:  # 8 rows per step, all from one source
        assert sorted((line["train/a_b_rows"], line["train/a_c_rows"])) == [0, 8], line
    assert {line["train/a_b_rows"] > 0 for line in steps} == {True, False}


def test_a_mixture_can_be_the_validation_split(tmp_path: Path) -> None:
    """Read in order (no sampler): every row of every source once."""
    config = load_config(None, [
        *vector_overrides(tmp_path, "clip", modalities=3), "train.max_steps=2",
        "data.val={kind: mixture, sources: [{kind: synthetic, size: 12, seed: 1, "
        "modalities: [a, b]}, {kind: synthetic, size: 12, seed: 2, modalities: [a, c]}]}"])
    model = MultiModalModel(config)
    dataset = build_dataset(config.data.val, model.modalities, False, "raise")
    loader = build_dataloader(dataset, model.modalities, 8, shuffle=False, drop_last=False)
    ids = [i for batch in loader for i in batch["ids"]]
    assert ids == [f"syn-1-{i}" for i in range(12)] + [f"syn-2-{i}" for i in range(12)]
    result = train(config)
    assert result.metrics["val/a->b/R@1"] >= 0 and "val/b->c/R@1" not in result.metrics
