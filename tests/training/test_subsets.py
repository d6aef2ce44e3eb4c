"""Subset-consistent training: rows hide random modalities, reproducibly, and it is what
makes Symile and GRAM answer one- and two-modality queries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anymodal.config import load_config
from anymodal.data.build import build_dataloader, build_dataset
from anymodal.data.subsets import EpochSampler, ModalityDropout, hidden_modalities
from anymodal.errors import ConfigError
from anymodal.model import MultiModalModel
from anymodal.training import train
from anymodal.training.loop import modality_dropout
from anymodal.types import PRESENT_KEY
from tests.conftest import vector_overrides


def test_hidden_sets_keep_min_present_and_follow_p() -> None:
    rule = ModalityDropout(p=0.3, min_present=2, seed=5)
    keys = ["a", "b", "c", "d"]
    draws = [hidden_modalities(keys, rule, epoch, row) for epoch in range(3)
             for row in range(400)]
    assert all(len(keys) - len(h) >= 2 for h in draws)
    hiding = sum(bool(h) for h in draws) / len(draws)
    assert 0.25 < hiding < 0.35
    # Both kept sizes (2 and 3 of 4) occur: every sub-tuple size a query uses is trained.
    assert {len(h) for h in draws if h} == {1, 2}
    # A pure function of (seed, epoch, row): the same draw again, another one next epoch.
    assert hidden_modalities(keys, rule, 1, 7) == hidden_modalities(keys, rule, 1, 7)
    per_epoch = [[hidden_modalities(keys, rule, e, r) for r in range(200)] for e in (0, 1)]
    assert per_epoch[0] != per_epoch[1]
    assert hidden_modalities(["a", "b"], rule, 0, 3) == set()  # nothing left to hide
    assert hidden_modalities(keys, ModalityDropout(p=0.0), 0, 3) == set()
    with pytest.raises(ConfigError, match=r"modality_dropout\.p"):
        ModalityDropout(p=1.5)


def test_sampler_order_is_accelerates_seeded_order_with_the_epoch_inside() -> None:
    sampler = EpochSampler(10, seed=3)
    sampler.set_epoch(2)
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(5)).tolist()
    assert list(sampler) == [20 + i for i in expected]


def test_one_pass_chains_epochs_so_the_loader_never_drains() -> None:
    sampler = EpochSampler(5, seed=1, epochs=3)
    sampler.set_epoch(2)
    expected = [e * 5 + i for e in (2, 3, 4)
                for i in torch.randperm(5, generator=torch.Generator().manual_seed(1 + e))]
    assert len(sampler) == 15 and list(sampler) == expected


def _present_masks(tmp_path: Path, workers: int) -> list[dict[str, list[bool]]]:
    config = load_config(None, [*vector_overrides(tmp_path, "symile", modalities=3),
                                "data.train.size=40"])
    model = MultiModalModel(config)
    dataset = build_dataset(config.data.train, model.modalities, True, "raise")
    loader = build_dataloader(dataset, model.modalities, 8, shuffle=True, num_workers=workers,
                              seed=0, dropout=modality_dropout(config, model))
    masks = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        for batch in loader:
            masks.append({k: v.tolist() for k, v in batch[PRESENT_KEY].items()})
    return masks


@pytest.mark.slow
def test_masks_are_the_same_with_or_without_loader_workers(tmp_path: Path) -> None:
    # Persistent workers keep their own copy of the dataset: the epoch travels in the index.
    in_process = _present_masks(tmp_path, 0)
    assert in_process == _present_masks(tmp_path, 2)
    hidden = sum(not x for m in in_process for v in m.values() for x in v)
    assert hidden > 0


def test_on_by_default_only_for_objectives_that_need_it(tmp_path: Path) -> None:
    for objective, expected in (("symile", 0.3), ("gram", 0.3), ("clip", 0.0)):
        config = load_config(None, vector_overrides(tmp_path, objective, modalities=3))
        assert modality_dropout(config, MultiModalModel(config)).p == expected, objective
    config = load_config(None, [*vector_overrides(tmp_path, "symile", modalities=3),
                                "train.modality_dropout.p=0"])
    assert not modality_dropout(config, MultiModalModel(config)).active


def _three_views(tmp_path: Path, objective: str, *extra: str) -> dict[str, float]:
    overrides = [*vector_overrides(tmp_path, objective, modalities=3),
                 "modalities.a.params.width=64", "modalities.b.params.width=64",
                 "modalities.c.params.width=64", "modalities.a.params.hidden=64",
                 "modalities.b.params.hidden=64", "modalities.c.params.hidden=64",
                 "model.embed_dim=32",
                 "data.train.size=1024", "data.batch_size=32", "data.val.size=256",
                 "train.max_steps=150", "train.log_every=50", "optim.lr=2e-3",
                 "train.threads=1", *extra]
    result = train(load_config(None, overrides))
    return result.metrics


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["symile", "gram"])
def test_default_settings_answer_every_sub_tuple_query(tmp_path: Path, objective: str) -> None:
    """Held-out rows (val seed 1; 16 classes, chance R@1 ~0.066), label positives, each
    objective's own score through anymodal.retrieval: one- and two-modality queries well
    above chance with the defaults, and the all-others query no worse than without
    subset-consistent training."""
    on = _three_views(tmp_path / "on", objective)
    off = _three_views(tmp_path / "off", objective, "train.modality_dropout.p=0")
    singles = [f"{a}->{b}" for a in "abc" for b in "abc" if a != b]
    pairs = ["b+c->a", "a+c->b", "a+b->c"]
    for task in singles + pairs:
        chance = on[f"val/{task}/chance_R@1"]
        assert chance < 0.1, task  # 16 classes
        assert on[f"val/{task}/R@1"] > 0.7, (objective, task, on[f"val/{task}/R@1"])
    for task in pairs:  # with three modalities the two-modality queries are all-others
        assert on[f"val/{task}/R@1"] >= off[f"val/{task}/R@1"] - 0.03, (objective, task)
    # Without it the sub-tuple queries are not trained: the worst single query is far off.
    assert min(off[f"val/{t}/R@1"] for t in singles) < 0.6
