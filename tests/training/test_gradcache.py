"""GradCache gives the loss and the parameter gradients of the whole batch.

Batch 64 in micro-batches of 8 against one batch of 64 (float64, 1e-5), for clip, symile
(n_squared) and gram, with rows missing a modality; randomness replayed; buffers updated
once; mixed precision; the real MultiModalModel; the cutting of collated batches.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from anymodal.errors import ConfigError, DataError
from anymodal.training.gradcache import GradCache, check_accelerator, gradcache_step
from anymodal.training.microbatches import split_batch
from anymodal.types import PRESENT_KEY
from tests.training.gradcache_models import CASES, TinyModel, grads_of, make_batch

KEYS3 = ["a", "b", "c"]


def _assert_same_grads(got: dict, want: dict, tol: float = 1e-5) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if want[name] is None:
            assert got[name] is None, name
            continue
        assert got[name] is not None, name
        torch.testing.assert_close(got[name], want[name], atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize(("name", "params", "modalities"), CASES, ids=[c[0] for c in CASES])
def test_micro_batches_of_8_equal_one_batch_of_64(name: str, params: dict, modalities: int
                                                 ) -> None:
    keys = KEYS3[:modalities]
    batch = make_batch(keys, 64, seed=1)
    whole = TinyModel(keys, name, params)
    out_whole = whole.compute_loss(batch)
    out_whole["loss"].backward()

    cached = TinyModel(keys, name, params)
    out = gradcache_step(cached, batch, micro_batch=8)
    torch.testing.assert_close(out["loss"].detach(), out_whole["loss"].detach(), atol=1e-5,
                               rtol=1e-5)
    for key, value in out_whole.items():  # the named parts too
        torch.testing.assert_close(out[key].detach(), value.detach(), atol=1e-5, rtol=1e-5)
    want = grads_of(whole)
    _assert_same_grads(grads_of(cached), want)
    # The check has teeth: the gradient reaches the encoders, and for symile (which puts the
    # learned missing embedding in place of an absent modality; clip and gram leave such
    # rows out of the terms that need it) the missing embeddings.
    assert want["encoders.a.0.weight"].abs().sum() > 1e-3
    assert name != "symile" or want["missing.a"].abs().sum() > 1e-6


def _registered_objectives() -> list[str]:
    import anymodal

    return [getattr(o, "name", o) for o in anymodal.list_objectives()]


@pytest.mark.parametrize("name", _registered_objectives())
def test_every_registered_objective(name: str) -> None:
    """Every objective, with its default params, in micro-batches of 8 of 32 rows."""
    batch = make_batch(KEYS3, 32, seed=6)
    whole = TinyModel(KEYS3, name)
    out_whole = whole.compute_loss(batch)
    out_whole["loss"].backward()
    cached = TinyModel(KEYS3, name)
    out = gradcache_step(cached, batch, 8)
    torch.testing.assert_close(out["loss"].detach(), out_whole["loss"].detach())
    _assert_same_grads(grads_of(cached), grads_of(whole))


def test_uneven_last_micro_batch_and_one_row_micro_batches() -> None:
    keys = KEYS3[:2]
    batch = make_batch(keys, 13, seed=2)
    whole = TinyModel(keys, "clip")
    whole.compute_loss(batch)["loss"].backward()
    for micro in (1, 5, 13, 100):
        cached = TinyModel(keys, "clip")
        gradcache_step(cached, batch, micro_batch=micro)
        _assert_same_grads(grads_of(cached), grads_of(whole))


def _micro_batched_reference(model: TinyModel, batch: dict, micro: int,
                             autocast=contextlib.nullcontext) -> dict:
    """The micro-batched forward with graph, all kept: what GradCache must reproduce.

    Each micro-batch has its own autocast context, as in GradCache (one context for all
    would share the bf16 copy of each weight and sum its gradient in bf16)."""
    pieces = split_batch(batch, list(model.encoders), micro)
    parts = []
    for piece in pieces:
        with autocast():
            parts.append(model.embed_batch(piece))
    embeddings = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    out = model.objective(embeddings, model.logit_scale(), batch[PRESENT_KEY])
    out["loss"].backward()
    return out


def test_dropout_is_replayed_identically_in_the_second_pass() -> None:
    batch = make_batch(KEYS3, 32, seed=3)
    reference = TinyModel(KEYS3, "symile", {"negatives": "n_squared"}, dropout=0.3)
    torch.manual_seed(7)
    _micro_batched_reference(reference, batch, 8)
    after_reference = torch.get_rng_state()

    cached = TinyModel(KEYS3, "symile", {"negatives": "n_squared"}, dropout=0.3)
    torch.manual_seed(7)
    gradcache_step(cached, batch, 8)
    _assert_same_grads(grads_of(cached), grads_of(reference), tol=1e-10)
    # The generator ends where one pass leaves it: GradCache draws no extra numbers.
    assert torch.equal(torch.get_rng_state(), after_reference)

    # Dropout is active: another seed gives other gradients.
    other = TinyModel(KEYS3, "symile", {"negatives": "n_squared"}, dropout=0.3)
    torch.manual_seed(8)
    gradcache_step(other, batch, 8)
    diff = (grads_of(other)["encoders.a.0.weight"] - grads_of(cached)["encoders.a.0.weight"])
    assert diff.abs().max() > 1e-4


def test_batchnorm_statistics_are_updated_once() -> None:
    batch = make_batch(KEYS3[:2], 24, seed=4, missing=False)
    reference = TinyModel(KEYS3[:2], "gram", batchnorm=True)
    _micro_batched_reference(reference, batch, 8)
    cached = TinyModel(KEYS3[:2], "gram", batchnorm=True)
    gradcache_step(cached, batch, 8)
    for (name, want), got in zip(reference.named_buffers(), cached.buffers()):
        torch.testing.assert_close(got, want, msg=name)
    _assert_same_grads(grads_of(cached), grads_of(reference), tol=1e-10)
    assert int(cached.encoders.a[1].num_batches_tracked) == 3  # three micro-batches, once


def test_bf16_autocast_matches_the_micro_batched_forward() -> None:
    batch = make_batch(KEYS3[:2], 32, seed=5)
    float_batch = {k: (v.float() if torch.is_tensor(v) else v) for k, v in batch.items()}

    def bf16() -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16)

    reference = TinyModel(KEYS3[:2], "clip").float()
    _micro_batched_reference(reference, float_batch, 8, bf16)
    cached = TinyModel(KEYS3[:2], "clip").float()
    gradcache_step(cached, float_batch, 8, autocast=bf16)
    _assert_same_grads(grads_of(cached), grads_of(reference), tol=1e-6)
    # bf16 was in use: the float32 gradients are not these.
    plain = TinyModel(KEYS3[:2], "clip").float()
    gradcache_step(plain, float_batch, 8)
    diff = grads_of(plain)["encoders.a.0.weight"] - grads_of(cached)["encoders.a.0.weight"]
    assert diff.abs().max() > 1e-4


def test_backward_before_the_loss_is_an_error() -> None:
    batch = make_batch(KEYS3[:2], 8)
    cache = GradCache(TinyModel(KEYS3[:2], "clip"), 4)
    with pytest.raises(RuntimeError, match="forward"):
        cache.backward()
    cache.forward(batch)
    with pytest.raises(RuntimeError, match="back-propagate"):
        cache.backward()
    with pytest.raises(ConfigError, match="micro_batch must be at least 1"):
        GradCache(TinyModel(KEYS3[:2], "clip"), 0)


def test_split_batch_cuts_dicts_lists_and_present_rows() -> None:
    present = torch.tensor([True, False, True, True, False, True])
    batch = {
        PRESENT_KEY: {"t": present, "v": torch.ones(6, dtype=torch.bool)},
        "t": {"input_ids": torch.arange(8).reshape(4, 2), "text": ["w", "x", "y", "z"]},
        "v": torch.arange(6.0)[:, None],
        "ids": [str(i) for i in range(6)],
    }
    pieces = split_batch(batch, ["t", "v"], 2)
    assert [p[PRESENT_KEY]["t"].tolist() for p in pieces] == [[True, False], [True, True],
                                                               [False, True]]
    assert [p["t"]["text"] for p in pieces] == [["w"], ["x", "y"], ["z"]]
    assert pieces[1]["t"]["input_ids"].tolist() == [[2, 3], [4, 5]]
    assert [p["v"].squeeze(1).tolist() for p in pieces] == [[0, 1], [2, 3], [4, 5]]
    only_missing = split_batch({**batch, PRESENT_KEY: {**batch[PRESENT_KEY],
                                                       "t": torch.zeros(6, dtype=torch.bool)},
                                "t": {"text": []}}, ["t", "v"], 3)
    assert all("t" not in p and not p[PRESENT_KEY]["t"].any() for p in only_missing)


def test_split_batch_cuts_a_pyg_batch_into_graphs() -> None:
    pyg = pytest.importorskip("torch_geometric.data")  # the graph plugin's dependency
    graphs = [pyg.Data(x=torch.full((n, 2), float(n)),
                       edge_index=torch.tensor([[0], [n - 1]])) for n in (2, 3, 4, 5)]
    batch = {PRESENT_KEY: {"g": torch.ones(4, dtype=torch.bool)},
             "g": pyg.Batch.from_data_list(graphs)}
    pieces = split_batch(batch, ["g"], 3)
    assert [p["g"].num_graphs for p in pieces] == [3, 1]
    assert pieces[1]["g"].x.tolist() == [[5.0, 5.0]] * 5
    assert pieces[0]["g"].batch.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]


def test_split_batch_names_a_field_it_cannot_cut() -> None:
    batch = {PRESENT_KEY: {"a": torch.ones(4, dtype=torch.bool)},
             "a": {"features": torch.zeros(6, 3), "mask": torch.ones(6, 3)}}
    with pytest.raises(DataError, match=r"batch\['a'\]\.features.*4 rows"):
        split_batch(batch, ["a"], 2)
    with pytest.raises(DataError, match="object"):
        split_batch({PRESENT_KEY: {"a": torch.ones(2, dtype=torch.bool)}, "a": object()},
                    ["a"], 1)


def test_real_model_float32(tmp_path) -> None:
    """MultiModalModel itself (vector encoders, float32): same loss and gradients."""
    from anymodal import MultiModalModel
    from anymodal.config import load_config
    from anymodal.data.build import build_dataset
    from anymodal.data.collate import collate_rows
    from tests.conftest import vector_overrides

    config = load_config(None, vector_overrides(tmp_path, "symile", modalities=3,
                                                **{"objective.params.negatives": "n_squared"}))
    torch.manual_seed(0)
    whole = MultiModalModel(config)
    cached = MultiModalModel(config)
    cached.load_state_dict(whole.state_dict())
    dataset = build_dataset(config.data.train, whole.modalities, True, "raise")
    batch = collate_rows([dataset[i] for i in range(32)], whole.modalities)
    batch[PRESENT_KEY]["b"][::5] = False  # rows without b: the learned missing embedding
    batch["b"] = batch["b"][batch[PRESENT_KEY]["b"]]
    out_whole = whole(batch, return_loss=True)
    out_whole["loss"].backward()
    out = gradcache_step(cached, batch, 8)
    torch.testing.assert_close(out["loss"], out_whole["loss"], atol=1e-6, rtol=1e-5)
    _assert_same_grads(grads_of(cached), grads_of(whole), tol=2e-5)


def test_training_loop_with_micro_batch_equals_the_whole_batch(tmp_path, monkeypatch) -> None:
    """``train.micro_batch`` through the real loop: the same losses and weights as the
    plain step on the same 32-row batches (symile n_squared, float32, rows missing b)."""
    import json

    from safetensors.torch import load_file

    from anymodal.config import load_config
    from anymodal.training import train
    from tests.conftest import vector_overrides

    def run(name: str, *extra: str) -> tuple[list[float], dict[str, torch.Tensor]]:
        overrides = vector_overrides(tmp_path / name, "symile", modalities=3, **{
            "objective.params.negatives": "n_squared", "data.batch_size": 32,
            "data.val": "null", "train.max_steps": 3, "train.modality_dropout.p": 0.3})
        train(load_config(None, [*overrides, *extra]))
        out = tmp_path / name / "run"
        losses = [json.loads(line)["train/loss"]
                  for line in (out / "metrics.jsonl").read_text().splitlines()]
        return losses, load_file(str(out / "model" / "model.safetensors"))

    passes: list[int] = []
    real_backward = GradCache.backward

    def counted(self: GradCache, sync: bool = True) -> None:
        passes.append(len(self._pieces))
        real_backward(self, sync)

    monkeypatch.setattr(GradCache, "backward", counted)
    plain_losses, plain = run("plain")
    assert passes == []
    cached_losses, cached = run("cached", "train.micro_batch=8")
    assert passes == [4, 4, 4]  # three steps, each 32 rows re-embedded 8 at a time
    assert len(plain_losses) == 3
    assert cached_losses == pytest.approx(plain_losses, abs=1e-5)
    for key in plain:
        torch.testing.assert_close(cached[key], plain[key], atol=1e-5, rtol=1e-4, msg=key)


def test_micro_batch_must_be_positive(tmp_path) -> None:
    from anymodal.config import load_config
    from tests.conftest import vector_overrides

    with pytest.raises(ConfigError, match=r"train\.micro_batch"):
        load_config(None, [*vector_overrides(tmp_path), "train.micro_batch=0"])


def test_sharded_accelerators_are_refused() -> None:
    from accelerate.utils import DistributedType

    class Fake:
        def __init__(self, kind: DistributedType) -> None:
            self.distributed_type = kind

        def autocast(self) -> contextlib.nullcontext:
            return contextlib.nullcontext()

    for kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        with pytest.raises(ConfigError, match=f"not supported with distributed type {kind.name}"):
            GradCache.for_accelerator(TinyModel(KEYS3[:2], "clip"), 4, Fake(kind))
    for kind in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        check_accelerator(Fake(kind))
