"""Rows with hidden modalities (subset-consistent training) and subset queries.

A row whose modality is hidden through ``present`` must be trained on the sub-tuple it
has: the pairwise objectives drop its pairs, GRAM uses the volume of its present members,
Symile uses the model's learned missing embedding in the hidden member's place (the model
puts it there, ``MultiModalModel.embed_batch``). Queries are then scored the same way.
"""

from __future__ import annotations

import objectives_reference as ref
import pytest
import torch

import anymodal
from anymodal.objectives import GramConfig, GramLoss
from anymodal.objectives.groups import groups

SCALE = 3.0


def _hide(names: list[str], n: int, hidden: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    present = {m: torch.ones(n, dtype=torch.bool) for m in names}
    for m, rows in hidden.items():
        present[m][rows] = False
    return present


@pytest.mark.parametrize("name", ["clip", "siglip", "gram", "mv_infonce", "mv_dhel", "dcl",
                                  "infoloob"])
def test_a_modality_hidden_in_every_row_equals_training_without_it(name: str) -> None:
    """Whatever the hidden member's rows hold, the loss is that of the sub-tuple alone."""
    emb = ref.embeddings(3, 6, 5, seed=11, grad=False)
    junk = {**emb, "m2": torch.randn(6, 5, dtype=torch.float64)}
    present = _hide(list(emb), 6, {"m2": list(range(6))})
    objective = anymodal.create_objective(name).double()
    masked = objective(junk, SCALE, present)["loss"]
    alone = objective({"m0": emb["m0"], "m1": emb["m1"]}, SCALE)["loss"]
    torch.testing.assert_close(masked, alone)


def test_gram_row_with_a_hidden_member_is_scored_on_its_present_members() -> None:
    """Rows 0-3 complete, rows 4-5 without m1: those two rows contrast the volume of
    (m0, m2) with every row that has m0 and m2 (all six), as if m1 did not exist."""
    emb = ref.embeddings(3, 6, 5, seed=12)
    present = _hide(list(emb), 6, {"m1": [4, 5]})
    out = GramLoss(GramConfig(label_smoothing=0.0)).double()(emb, SCALE, present)
    complete = ref.gram({m: x[:4] for m, x in emb.items()}, torch.tensor(SCALE), smoothing=0.0)
    pair = {m: emb[m] for m in ("m0", "m2")}
    vol = torch.stack([torch.stack([ref.volume([pair["m0"][i], pair["m2"][j]])
                                    for j in range(6)]) for i in range(6)])
    logits = -SCALE * vol
    rows = [torch.nn.functional.cross_entropy(logits[i], torch.tensor(i)) for i in (4, 5)]
    cols = [torch.nn.functional.cross_entropy(logits[:, i], torch.tensor(i)) for i in (4, 5)]
    # Each direction is the mean over the six rows that take part.
    want = (complete * 4 + (sum(rows) + sum(cols)) / 2) / 6
    torch.testing.assert_close(out["loss"], want)
    assert float(out["rows"]) == 6
    torch.testing.assert_close(
        out["loss"], ref.gram_subsets(emb, torch.tensor(SCALE), present, smoothing=0.0))


def test_gram_groups_follow_the_anchor_then_the_batch_order() -> None:
    present = _hide(["a", "b", "c"], 5, {"a": [3, 4], "b": [2], "c": [4]})
    found = {(g.anchor, g.members): (g.rows.tolist(), g.candidates.tolist())
             for g in groups(present, "a")}
    # Row 4 has b only: no tuple. Row 3 lacks the anchor: b takes the anchor role.
    assert found == {
        ("a", ("b", "c")): ([True, True, False, False, False],
                            [True, True, False, False, False]),
        ("a", ("c",)): ([False, False, True, False, False], [True, True, True, False, False]),
        ("b", ("c",)): ([False, False, False, True, False], [True, True, False, True, False]),
    }


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("anchor", [None, "m1"])
def test_gram_with_hidden_members_matches_reference(m: int, anchor: str | None) -> None:
    emb = ref.embeddings(m, 7, 5, seed=13)
    present = ref.present_masks(list(emb), 7, seed=4, p_missing=0.35, complete=2)
    scale = torch.tensor(SCALE, dtype=torch.float64, requires_grad=True)
    out = GramLoss(GramConfig(anchor=anchor)).double()(emb, scale, present)
    emb_ref = {k: v.detach().clone().requires_grad_() for k, v in emb.items()}
    scale_ref = scale.detach().clone().requires_grad_()
    want = ref.gram_subsets(emb_ref, scale_ref, present, anchor=anchor)
    torch.testing.assert_close(out["loss"], want)
    got = ref.grads(out["loss"], [*emb.values(), scale])
    for g, w in zip(got, ref.grads(want, [*emb_ref.values(), scale_ref])):
        torch.testing.assert_close(g, w)


def _vector_model(objective: str, **params: object) -> anymodal.MultiModalModel:
    mods = {key: {"modality": "vector", "options": {"view_seed": seed, "dim": 8},
                  "params": {"hidden": 16, "width": 16}}
            for key, seed in (("a", 1), ("b", 2), ("c", 3))}
    config = anymodal.load_config(None, {"modalities": mods, "model": {"embed_dim": 8},
                                         "objective": {"name": objective, "params": params}})
    torch.manual_seed(0)
    return anymodal.MultiModalModel(config)


def test_symile_hidden_member_is_the_models_missing_embedding() -> None:
    """The model puts its missing embedding in the hidden rows; such a row is contrasted
    with tuples that hold that same vector in the hidden member's place (rows grouped by
    the members they have), as a query without that member is scored."""
    model = _vector_model("symile", negatives="n_squared")
    rows = torch.randn(5, 8)
    has_b = torch.tensor([True, True, False, True, False])
    # A collated batch holds the present rows of each modality and the masks.
    batch = {"a": rows, "b": (rows + 1)[has_b], "c": rows + 2,
             "present": {"a": torch.ones(5, dtype=torch.bool), "b": has_b,
                         "c": torch.ones(5, dtype=torch.bool)}}
    got = model.compute_loss(batch)["loss"]
    emb = model.embed_batch(batch)
    miss = torch.nn.functional.normalize(model.missing["b"], dim=-1)
    torch.testing.assert_close(emb["b"][2], miss)
    torch.testing.assert_close(emb["b"][4], miss)
    want = ref.symile_subsets(emb, model.logit_scale(), batch["present"])
    torch.testing.assert_close(got, want)


def test_model_scores_a_subset_query_with_the_missing_embeddings() -> None:
    model = _vector_model("symile")
    q, c = torch.randn(3, 8, ), torch.randn(4, 8)
    miss_b = torch.nn.functional.normalize(model.missing["b"].detach(), dim=-1)
    want = model.logit_scale().detach() * (q * miss_b) @ c.T
    torch.testing.assert_close(model.score({"a": q}, c, target="c"), want)
    # The target can be left out when the query lacks only it.
    torch.testing.assert_close(model.score({"a": q, "b": q}, c),
                               model.logit_scale().detach() * (q * q) @ c.T)
    with pytest.raises(anymodal.ConfigError, match="target"):
        model.score({"a": q}, c)


def test_symile_trained_on_complete_rows_refuses_subset_queries() -> None:
    model = _vector_model("symile", missing="drop")
    q, c = torch.randn(3, 8, ), torch.randn(4, 8)
    with pytest.raises(anymodal.ConfigError, match="missing='drop'"):
        model.score({"a": q}, c, target="c")
    assert model.score({"a": q, "b": q}, c, target="c").shape == (3, 4)


@pytest.mark.parametrize("name", ["clip", "gram", "mv_infonce"])
def test_rules_that_ignore_missing_embeddings_need_no_target(name: str) -> None:
    model = _vector_model(name)
    q, c = torch.randn(3, 8, ), torch.randn(4, 8)
    torch.testing.assert_close(model.score({"a": q}, c),
                               model.objective.score({"a": q}, c, model.logit_scale()))


def test_symile_permutation_state_travels_in_the_state_dict() -> None:
    """A resumed run (state dict loaded into a fresh objective) draws the permutations the
    original run draws next; an old state dict without the key still loads."""
    emb = ref.embeddings(3, 8, 4, seed=1, grad=False)
    first = anymodal.create_objective("symile", seed=5).double()
    first(emb, 5.0)
    saved = {k: v.clone() for k, v in first.state_dict().items()}
    resumed = anymodal.create_objective("symile", seed=5).double()
    resumed.load_state_dict(saved)
    torch.testing.assert_close(resumed(emb, 5.0)["loss"], first(emb, 5.0)["loss"])
    fresh = anymodal.create_objective("symile", seed=5).double()
    assert not torch.allclose(fresh(emb, 5.0)["loss"], resumed(emb, 5.0)["loss"])
    old = anymodal.create_objective("symile", seed=5)
    old.load_state_dict({})  # written before the state was kept: no missing key


def test_symile_hidden_rows_are_not_told_apart_by_the_hidden_member() -> None:
    """Rows 4-5 lack m1: their terms contrast (m0, m2) only, so what the complete rows
    hold in m1 moves the complete rows' Symile and nothing else (no shortcut through m1:
    a candidate with a real m1 beside a positive with the missing one)."""
    emb = ref.embeddings(3, 6, 5, seed=21, grad=False)
    present = _hide(list(emb), 6, {"m1": [4, 5]})
    other = {**emb, "m1": torch.cat([torch.randn(4, 5, dtype=torch.float64), emb["m1"][4:]])}
    objective = anymodal.create_objective("symile", negatives="n_squared").double()
    moved = objective(other, SCALE, present)["loss"] - objective(emb, SCALE, present)["loss"]
    scale = torch.tensor(SCALE, dtype=torch.float64)
    complete = [ref.symile_n_squared({m: x[:4] for m, x in e.items()}, scale)
                for e in (other, emb)]
    # 4 complete rows x 3 anchors and 2 hidden rows x 2 anchors share the mean.
    torch.testing.assert_close(moved, (complete[0] - complete[1]) * 12 / 16)
