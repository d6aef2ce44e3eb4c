"""Each objective against its straightforward float64 reference: values and gradients.

M = 2, 3, 4 modalities, with and without presence masks, small N.
"""

from __future__ import annotations

from collections.abc import Callable

import objectives_reference as ref
import pytest
import torch

from anymodal import objectives as obj

SCALE = 2.5
MODALITIES = [2, 3, 4]


def _compare(
    objective: torch.nn.Module,
    reference: Callable[..., torch.Tensor],
    m: int,
    n: int = 6,
    d: int = 5,
    seed: int = 0,
    with_present: bool = False,
    complete: int = 3,
) -> dict[str, torch.Tensor]:
    """Run ``objective`` and ``reference(emb, s, present, params)``; compare loss and grads."""
    objective = objective.double()
    emb = ref.embeddings(m, n, d, seed)
    present = ref.present_masks(list(emb), n, seed, complete=complete) if with_present else None
    scale = torch.tensor(SCALE, dtype=torch.float64, requires_grad=True)
    params = list(objective.parameters())
    out = objective(emb, scale, present)
    got = ref.grads(out["loss"], [*emb.values(), scale, *params])

    emb_ref = {k: v.detach().clone().requires_grad_() for k, v in emb.items()}
    scale_ref = scale.detach().clone().requires_grad_()
    params_ref = [p.detach().clone().requires_grad_() for p in params]
    expected = reference(emb_ref, scale_ref, present, params_ref)
    want = ref.grads(expected, [*emb_ref.values(), scale_ref, *params_ref])

    torch.testing.assert_close(out["loss"], expected)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert all(torch.isfinite(v).all() for v in out.values())
    return out


def _complete(present, names) -> torch.Tensor | None:
    if present is None:
        return None
    keep = torch.ones_like(next(iter(present.values())))
    for name in names:
        keep = keep & present[name]
    return keep


# ----------------------------------------------------------------------------- pairwise


@pytest.mark.parametrize("m", MODALITIES)
@pytest.mark.parametrize("with_present", [False, True])
def test_clip_all_pairs_matches_reference(m: int, with_present: bool) -> None:
    out = _compare(
        obj.ClipLoss(),
        lambda e, s, p, _: ref.clip(e, s, p, ref.all_pairs(list(e))),
        m, with_present=with_present,
    )
    assert "m0_m1_loss" in out and "m0_to_m1_loss" in out and "m1_to_m0_loss" in out
    if not with_present:
        assert float(out["m0_m1_rows"]) == 6


@pytest.mark.parametrize("with_present", [False, True])
@pytest.mark.parametrize(
    ("config", "pairs", "reduction"),
    [
        (obj.ClipConfig(anchor="m1"), [("m1", "m0"), ("m1", "m2"), ("m1", "m3")], "mean"),
        (obj.ClipConfig(reduction="sum"), ref.all_pairs(["m0", "m1", "m2", "m3"]), "sum"),
        (obj.ClipConfig(pairs="m0:m2, m3:m1"), [("m0", "m2"), ("m3", "m1")], "mean"),
    ],
)
def test_clip_pair_options_match_reference(config, pairs, reduction, with_present) -> None:
    _compare(
        obj.ClipLoss(config),
        lambda e, s, p, _: ref.clip(e, s, p, pairs, reduction),
        4, with_present=with_present,
    )


@pytest.mark.parametrize("m", MODALITIES)
@pytest.mark.parametrize("with_present", [False, True])
def test_siglip_matches_reference(m: int, with_present: bool) -> None:
    # A bias of -1 keeps both labels' terms in play (at -10 the negatives barely count).
    _compare(
        obj.SigLipLoss(obj.SigLipConfig(init_bias=-1.0)),
        lambda e, s, p, params: ref.siglip(e, s, params[0], p, ref.all_pairs(list(e))),
        m, with_present=with_present,
    )


def test_siglip_anchor_sum_matches_reference() -> None:
    pairs = [("m2", "m0"), ("m2", "m1")]
    _compare(
        obj.SigLipLoss(obj.SigLipConfig(anchor="m2", reduction="sum")),
        lambda e, s, p, params: ref.siglip(e, s, params[0], p, pairs, "sum"),
        3, with_present=True,
    )


def test_pairwise_drops_rows_of_a_pair_only() -> None:
    """A row missing ``m1`` still counts in the (m0, m2) pair."""
    emb = ref.embeddings(3, 5, 4, seed=3)
    present = {"m1": torch.tensor([True, True, True, False, False])}
    out = obj.ClipLoss().double()(emb, 2.0, present)
    assert float(out["m0_m1_rows"]) == 3 and float(out["m1_m2_rows"]) == 3
    assert float(out["m0_m2_rows"]) == 5


# ----------------------------------------------------------------------------- symile


@pytest.mark.parametrize("m", MODALITIES)
@pytest.mark.parametrize("missing", [None, "embedding", "drop"])
def test_symile_n_matches_reference(m: int, missing: str | None) -> None:
    config = obj.SymileConfig(negatives="n", seed=7, missing=missing or "embedding")
    names = [f"m{k}" for k in range(m)]

    def reference(e, s, p, _):
        if missing == "embedding":
            return ref.symile_subsets(e, s, p, negatives="n", seed=7)
        keep = _complete(p, names) if missing == "drop" else None
        return ref.symile_n(e, s, seed=7, keep=keep)

    _compare(obj.SymileLoss(config), reference, m, with_present=missing is not None)


@pytest.mark.parametrize("m", MODALITIES)
@pytest.mark.parametrize("missing", [None, "embedding", "drop"])
def test_symile_n_squared_matches_reference(m: int, missing: str | None) -> None:
    config = obj.SymileConfig(negatives="n_squared", missing=missing or "embedding")
    names = [f"m{k}" for k in range(m)]

    def reference(e, s, p, _):
        if missing == "embedding":
            return ref.symile_subsets(e, s, p, negatives="n_squared")
        keep = _complete(p, names) if missing == "drop" else None
        return ref.symile_n_squared(e, s, keep=keep)

    n = 4 if m == 4 else 5
    _compare(obj.SymileLoss(config), reference, m, n=n, with_present=missing is not None,
             complete=2)


def test_symile_n_draws_new_permutations_each_call() -> None:
    emb = ref.embeddings(3, 8, 4, seed=1, grad=False)
    objective = obj.SymileLoss(obj.SymileConfig(seed=3)).double()
    first, second = objective(emb, 5.0)["loss"], objective(emb, 5.0)["loss"]
    assert not torch.allclose(first, second)
    again = obj.SymileLoss(obj.SymileConfig(seed=3)).double()(emb, 5.0)["loss"]
    torch.testing.assert_close(first, again)


# ----------------------------------------------------------------------------- gram


@pytest.mark.parametrize("m", MODALITIES)
@pytest.mark.parametrize("missing", [None, "embedding", "drop"])
def test_gram_matches_reference(m: int, missing: str | None) -> None:
    config = obj.GramConfig(missing=missing or "embedding")
    names = [f"m{k}" for k in range(m)]

    def reference(e, s, p, _):
        if missing == "drop":
            return ref.gram(e, s, keep=_complete(p, names))
        return ref.gram_subsets(e, s, p) if p is not None else ref.gram(e, s)

    out = _compare(obj.GramLoss(config), reference, m, with_present=missing is not None)
    assert {"m0_to_others_loss", "others_to_m0_loss", "rows"} <= set(out)


def test_gram_anchor_and_smoothing_match_reference() -> None:
    _compare(
        obj.GramLoss(obj.GramConfig(anchor="m2", label_smoothing=0.0)),
        lambda e, s, p, _: ref.gram(e, s, anchor="m2", smoothing=0.0),
        3,
    )


# ----------------------------------------------------------------------------- multi-view


@pytest.mark.parametrize("m", MODALITIES)
@pytest.mark.parametrize("missing", [None, "mask", "embedding", "drop"])
@pytest.mark.parametrize(
    ("cls", "reference"), [(obj.MVInfoNCELoss, ref.mv_infonce), (obj.MVDHELLoss, ref.mv_dhel)]
)
def test_multiview_matches_reference(cls, reference, m: int, missing: str | None) -> None:
    names = [f"m{k}" for k in range(m)]

    masked = {ref.mv_infonce: ref.mv_infonce_masked, ref.mv_dhel: ref.mv_dhel_masked}

    def run_reference(e, s, p, _):
        if missing == "mask":
            return masked[reference](e, s, p)
        return reference(e, s, keep=_complete(p, names) if missing == "drop" else None)

    _compare(
        cls(obj.MultiViewConfig(missing=missing or "mask")),
        run_reference, m, with_present=missing is not None,
    )


# ----------------------------------------------------------------------------- small terms


ALL = [
    lambda: obj.ClipLoss(),
    lambda: obj.SigLipLoss(),
    lambda: obj.SymileLoss(obj.SymileConfig(missing="drop")),
    lambda: obj.GramLoss(obj.GramConfig(missing="drop")),
    lambda: obj.MVInfoNCELoss(obj.MultiViewConfig(missing="drop")),
    lambda: obj.MVDHELLoss(obj.MultiViewConfig(missing="drop")),
]


@pytest.mark.parametrize("make", ALL)
def test_term_with_fewer_than_two_rows_is_zero_not_nan(make) -> None:
    objective = make().double()
    emb = ref.embeddings(3, 4, 5, seed=2)
    # Only row 0 has m1, and only row 0 is complete: every pair with m1 and every
    # higher-order term (with missing="drop") has a single row.
    present = {"m1": torch.tensor([True, False, False, False])}
    scale = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    out = objective(emb, scale, present)
    assert all(torch.isfinite(v).all() for v in out.values())
    counts = {k: float(v) for k, v in out.items() if k.endswith("rows")}
    if "rows" in counts:
        assert counts == {"rows": 1.0}
        assert out["loss"].item() == 0.0
    else:
        assert counts["m0_m1_rows"] == 1 and counts["m0_m2_rows"] == 4
        assert out["m0_m1_loss"].item() == 0.0 and out["m0_m2_loss"].item() > 0
    out["loss"].backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in emb.values())


@pytest.mark.parametrize("make", ALL)
def test_batch_of_one_row_gives_zero_loss(make) -> None:
    objective = make()
    emb = ref.embeddings(3, 1, 5, seed=2, dtype=torch.float32)
    out = objective(emb, 10.0)
    assert out["loss"].item() == 0.0
    out["loss"].backward()
    assert all(torch.equal(x.grad, torch.zeros_like(x)) for x in emb.values())
