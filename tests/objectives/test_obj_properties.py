"""Property tests: invariances, open_clip's formula, alignment limits, finiteness."""

from __future__ import annotations

import itertools
import math

import objectives_reference as ref
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from anymodal.objectives import (
    ClipConfig,
    ClipLoss,
    GramConfig,
    GramLoss,
    MultiViewConfig,
    MVDHELLoss,
    MVInfoNCELoss,
    SigLipConfig,
    SigLipLoss,
    SymileConfig,
    SymileLoss,
)

FEW = settings(max_examples=25, deadline=None)

# Every objective whose value does not depend on the order of the batch rows. Symile's
# "n" variant is left out on purpose: its negatives are drawn by random permutations, so
# reordering the batch changes which tuples are negatives.
PERMUTATION_INVARIANT = {
    "clip": lambda: ClipLoss(),
    "clip_anchor": lambda: ClipLoss(ClipConfig(anchor="m1")),
    "siglip": lambda: SigLipLoss(SigLipConfig(init_bias=-2.0)),
    "symile_n_squared": lambda: SymileLoss(SymileConfig(negatives="n_squared")),
    "symile_n_squared_drop": lambda: SymileLoss(
        SymileConfig(negatives="n_squared", missing="drop")
    ),
    "gram": lambda: GramLoss(),
    "gram_drop": lambda: GramLoss(GramConfig(missing="drop")),
    "mv_infonce": lambda: MVInfoNCELoss(),
    "mv_dhel": lambda: MVDHELLoss(),
    "mv_dhel_drop": lambda: MVDHELLoss(MultiViewConfig(missing="drop")),
}

# Objectives whose value does not depend on the order of the modalities.
ORDER_INVARIANT = {
    "clip": lambda: ClipLoss(),
    "siglip": lambda: SigLipLoss(SigLipConfig(init_bias=-2.0)),
    "symile_n_squared": lambda: SymileLoss(SymileConfig(negatives="n_squared")),
    "mv_infonce": lambda: MVInfoNCELoss(),
    "mv_dhel": lambda: MVDHELLoss(),
    # GRAM: the anchor is fixed, the other modalities are a set (det is invariant).
    "gram_fixed_anchor": lambda: GramLoss(GramConfig(anchor="m0")),
}

batches = st.fixed_dictionaries({
    "m": st.integers(2, 4),
    "n": st.integers(2, 5),
    "d": st.integers(2, 6),
    "seed": st.integers(0, 10_000),
    "masked": st.booleans(),
})


def _inputs(batch: dict) -> tuple[dict, dict | None]:
    n = batch["n"]
    emb = ref.embeddings(batch["m"], n, batch["d"], batch["seed"], grad=False)
    present = ref.present_masks(list(emb), n, batch["seed"]) if batch["masked"] else None
    return emb, present


@pytest.mark.parametrize("name", sorted(PERMUTATION_INVARIANT))
@FEW
@given(batch=batches, perm_seed=st.integers(0, 10_000))
def test_invariant_to_joint_permutation_of_the_batch(name, batch, perm_seed) -> None:
    emb, present = _inputs(batch)
    perm = torch.randperm(batch["n"], generator=torch.Generator().manual_seed(perm_seed))
    objective = PERMUTATION_INVARIANT[name]().double()
    before = objective(emb, 3.0, present)["loss"]
    after = objective(
        {k: v[perm] for k, v in emb.items()}, 3.0,
        None if present is None else {k: v[perm] for k, v in present.items()},
    )["loss"]
    torch.testing.assert_close(before, after)


@pytest.mark.parametrize("name", sorted(ORDER_INVARIANT))
@FEW
@given(batch=batches, order_seed=st.integers(0, 10_000))
def test_invariant_to_the_order_of_modalities(name, batch, order_seed) -> None:
    emb, present = _inputs(batch)
    names = list(emb)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(order_seed))
    shuffled = [names[int(i)] for i in order]
    if name == "gram_fixed_anchor":
        shuffled = ["m0"] + [m for m in shuffled if m != "m0"]
    objective = ORDER_INVARIANT[name]().double()
    before = objective(emb, 3.0, present)["loss"]
    after = objective({m: emb[m] for m in shuffled}, 3.0, present)["loss"]
    torch.testing.assert_close(before, after)


@FEW
@given(n=st.integers(2, 16), d=st.integers(2, 32), seed=st.integers(0, 10_000),
       scale=st.floats(0.5, 100.0))
def test_clip_with_two_modalities_is_open_clips_formula(n, d, seed, scale) -> None:
    emb = ref.embeddings(2, n, d, seed, dtype=torch.float32, grad=False)
    image, text = emb["m0"], emb["m1"]
    # open_clip ClipLoss (one process): logits_per_image, logits_per_text, mean of the CEs.
    logits_per_image = scale * image @ text.T
    logits_per_text = scale * text @ image.T
    labels = torch.arange(n)
    expected = (
        F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)
    ) / 2
    got = ClipLoss()({"image": image, "text": text}, scale)["loss"]
    torch.testing.assert_close(got, expected)


# ----------------------------------------------------------------------------- alignment


def _aligned(m: int, n: int, seed: int, rotate: bool = True) -> dict[str, torch.Tensor]:
    """Every modality equal to the same orthonormal rows (rotated by a random rotation).

    Symile needs ``rotate=False``: the multilinear inner product is not invariant to
    rotations, and it is the one-hot rows that make MIP(e_i, e_j, ...) = [i = j = ...].
    """
    d = n * m
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    rows = q[:n] if rotate else torch.eye(d, dtype=torch.float64)[:n]
    return {f"m{k}": rows.clone() for k in range(m)}


def _gram_aligned(m: int, n: int, seed: int) -> dict[str, torch.Tensor]:
    """Tuples whose anchor lies in the span of its own tuple and is orthogonal to the others.

    With every modality equal, all GRAM volumes are 0 (the tuple's vectors coincide), so
    alignment for GRAM means: row j of each other modality mixes e_j with its own direction.
    """
    d = n * m
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    e = q[: n * m].reshape(m, n, d)  # orthonormal directions, one block per modality
    out = {"m0": e[0]}
    for k in range(1, m):
        out[f"m{k}"] = (e[0] + e[k]) / math.sqrt(2.0)
    return out


SCALES = [1.0, 5.0, 20.0, 50.0, 100.0]


def _non_increasing(losses: list[float]) -> bool:
    return all(a >= b - 1e-12 for a, b in itertools.pairwise(losses))


def _losses(objective, emb) -> list[float]:
    return [objective(emb, s)["loss"].detach().item() for s in SCALES]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClipLoss(),
        lambda: SymileLoss(SymileConfig(negatives="n_squared")),
        lambda: MVInfoNCELoss(),
    ],
    ids=["clip", "symile_n_squared", "mv_infonce"],
)
@FEW
@given(m=st.integers(2, 4), n=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_perfect_alignment_drives_the_loss_to_zero(make, m, n, seed) -> None:
    objective = make().double()
    emb = _aligned(m, n, seed, rotate=not isinstance(objective, SymileLoss))
    losses = _losses(objective, emb)
    assert _non_increasing(losses), losses
    assert losses[-1] < 1e-6


@FEW
@given(m=st.integers(2, 4), n=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_symile_n_alignment_tends_to_its_false_negative_floor(m, n, seed) -> None:
    # A shuffled tuple can be the positive tuple itself (the paper's "small chance of a
    # false negative"); with aligned rows such a column ties with the diagonal, so the
    # limit is the mean of log(1 + ties). The same seed gives the same permutations.
    emb = _aligned(m, n, seed, rotate=False)
    losses = [float(SymileLoss(SymileConfig(seed=seed)).double()(emb, s)["loss"]) for s in SCALES]
    generator = torch.Generator().manual_seed(seed)
    floor = 0.0
    for _ in range(m):
        perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(m - 1)])
        rows = torch.arange(n)
        # same[i, j]: column j's shuffled tuple is row i's own tuple.
        same = (perms.unsqueeze(1) == rows.view(1, n, 1)).all(dim=0)
        ties = (same & (rows.unsqueeze(1) != rows)).sum(dim=1)
        floor += torch.log1p(ties.double()).mean().item() / m
    assert _non_increasing(losses), losses
    assert losses[-1] == pytest.approx(floor, abs=1e-6)


@FEW
@given(m=st.integers(2, 4), n=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_siglip_alignment_tends_to_the_bias_floor(m, n, seed) -> None:
    # Off-diagonal similarities are 0, so each negative costs softplus(bias) whatever s is.
    objective = SigLipLoss(SigLipConfig(init_bias=-3.0)).double()
    losses = _losses(objective, _aligned(m, n, seed))
    floor = (n - 1) * F.softplus(torch.tensor(-3.0, dtype=torch.float64)).item()
    assert _non_increasing(losses), losses
    assert losses[-1] == pytest.approx(floor, rel=1e-6)


@FEW
@given(m=st.integers(2, 4), n=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_gram_alignment_drives_the_loss_to_zero(m, n, seed) -> None:
    # Label smoothing keeps the optimum away from zero (it wants non-zero wrong-class
    # probabilities), so the limit is checked without it.
    objective = GramLoss(GramConfig(label_smoothing=0.0)).double()
    losses = _losses(objective, _gram_aligned(m, n, seed))
    assert _non_increasing(losses), losses
    assert losses[-1] < 1e-6


@FEW
@given(m=st.integers(2, 4), n=st.integers(3, 5), seed=st.integers(0, 10_000))
def test_mv_dhel_alignment_decreases_without_floor(m, n, seed) -> None:
    # DHEL's denominator holds no positive, so aligned views give exactly
    # L = M log(N-1) - log C(M,2) - s: unbounded below, decreasing with s.
    losses = _losses(MVDHELLoss().double(), _aligned(m, n, seed))
    for s, loss in zip(SCALES, losses):
        assert loss == pytest.approx(m * math.log(n - 1) - math.log(math.comb(m, 2)) - s)


# ----------------------------------------------------------------------------- finiteness

ALL = {
    "clip": lambda: ClipLoss(),
    "siglip": lambda: SigLipLoss(),
    "symile_n": lambda: SymileLoss(),
    "symile_n_squared": lambda: SymileLoss(SymileConfig(negatives="n_squared")),
    "gram": lambda: GramLoss(),
    "mv_infonce": lambda: MVInfoNCELoss(),
    "mv_dhel": lambda: MVDHELLoss(),
}


@pytest.mark.parametrize("name", sorted(ALL))
@settings(max_examples=10, deadline=None)
@given(
    m=st.integers(2, 4), n=st.integers(2, 12), d=st.sampled_from([8, 256, 1024]),
    scale=st.floats(1.0, 100.0), seed=st.integers(0, 10_000), aligned=st.booleans(),
)
def test_no_nan_or_inf_in_float32(name, m, n, d, scale, seed, aligned) -> None:
    emb = ref.embeddings(m, n, d, seed, dtype=torch.float32)
    if aligned:  # every modality the same rows: degenerate volumes, saturated softmaxes
        emb = {k: emb["m0"].detach().clone().requires_grad_() for k in emb}
    logit_scale = torch.tensor(scale, requires_grad=True)
    out = ALL[name]()(emb, logit_scale)
    out["loss"].backward()
    assert all(torch.isfinite(v).all() for v in out.values()), out
    assert torch.isfinite(logit_scale.grad)
    assert all(torch.isfinite(x.grad).all() for x in emb.values())
