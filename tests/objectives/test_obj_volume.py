"""The Gram determinant from matrix products against ``torch.det`` of explicit Gram matrices."""

from __future__ import annotations

import pytest
import torch

from anymodal.objectives.gram import GramLoss
from anymodal.objectives.volume import gram_determinant, gram_volume, volume_torch_det


def _vectors(p: int, q: int, k: int, d: int, seed: int, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    anchor = torch.randn(p, d, generator=generator, dtype=torch.float64)
    others = [torch.randn(q, d, generator=generator, dtype=torch.float64) for _ in range(k - 1)]
    unit = [x / x.norm(dim=-1, keepdim=True) for x in [anchor, *others]]
    return [x.to(dtype).requires_grad_() for x in unit]


def _explicit_det(anchor, others):
    """torch.det of each k×k Gram matrix, built row pair by row pair."""
    out = torch.empty(anchor.shape[0], others[0].shape[0], dtype=anchor.dtype)
    for i in range(anchor.shape[0]):
        for j in range(others[0].shape[0]):
            vectors = torch.stack([anchor[i], *(o[j] for o in others)])
            out[i, j] = torch.det(vectors @ vectors.T)
    return out


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_determinant_matches_torch_det(k: int) -> None:
    anchor, *others = _vectors(4, 5, k, d=8, seed=k)
    torch.testing.assert_close(gram_determinant(anchor, others), _explicit_det(anchor, others))


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_volume_and_gradients_match_torch_det_way(k: int) -> None:
    inputs = _vectors(6, 6, k, d=7, seed=10 + k)
    ours = gram_volume(inputs[0], inputs[1:])
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1), dtype=ours.dtype)
    got = torch.autograd.grad((ours * weights).sum(), inputs)
    theirs = volume_torch_det(inputs[0], inputs[1:])
    want = torch.autograd.grad((theirs * weights).sum(), inputs)
    torch.testing.assert_close(ours, theirs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_volume_gradcheck(k: int) -> None:
    """The hand-written backward against finite differences (P != Q, float64)."""
    inputs = _vectors(3, 4, k, d=6, seed=20 + k)
    assert torch.autograd.gradcheck(lambda a, *o: gram_volume(a, list(o)), tuple(inputs))


def test_half_precision_is_computed_in_float32() -> None:
    anchor, *others = _vectors(8, 8, 3, d=32, seed=6, dtype=torch.float32)
    half = gram_volume(anchor.bfloat16(), [o.bfloat16() for o in others])
    assert half.dtype == torch.float32
    reference = volume_torch_det(anchor.bfloat16().float(), [o.bfloat16().float() for o in others])
    torch.testing.assert_close(half, reference, atol=1e-4, rtol=1e-4)


def test_float32_within_tolerance_of_torch_det() -> None:
    anchor, *others = _vectors(64, 64, 3, d=256, seed=3, dtype=torch.float32)
    diff = (gram_volume(anchor, others) - volume_torch_det(anchor, others)).abs().max()
    assert diff < 1e-4


def test_degenerate_tuples_give_finite_values_and_gradients() -> None:
    """Identical vectors: det G is 0, and rounding can make it slightly negative."""
    base = torch.nn.functional.normalize(torch.randn(5, 64), dim=-1)
    inputs = [base.clone().requires_grad_() for _ in range(3)]
    det = gram_determinant(inputs[0], inputs[1:])
    assert det.diagonal().abs().max() < 1e-5
    volume = gram_volume(inputs[0], inputs[1:])
    assert torch.isfinite(volume).all() and (volume > 0).all()
    volume.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in inputs)


def test_volume_is_area_and_parallelepiped() -> None:
    e = torch.eye(4, dtype=torch.float64)
    # Unit square, and a box of sides 1, 2, 3.
    square = gram_volume(e[:1], [e[1:2]])
    box = gram_volume(e[:1], [2 * e[1:2], 3 * e[2:3]])
    torch.testing.assert_close(square, torch.ones(1, 1, dtype=torch.float64))
    torch.testing.assert_close(box, torch.full((1, 1), 6.0, dtype=torch.float64))


def test_gram_score_is_negative_scaled_volume() -> None:
    a, b, c = _vectors(3, 5, 3, d=6, seed=4)
    scores = GramLoss().score({"b": b[:3].detach(), "c": c[:3].detach()}, a.detach(), 7.0)
    assert scores.shape == (3, 3)
    for qi in range(3):
        for ci in range(3):
            expected = -7.0 * volume_torch_det(a[ci : ci + 1], [b[qi : qi + 1], c[qi : qi + 1]])
            torch.testing.assert_close(scores[qi, ci], expected[0, 0].detach())
