"""``mip_logsumexp_all`` on the chunked torch path against the float64 einsum reference."""

from __future__ import annotations

import math

import pytest
import torch
from kernels_reference import check_logsumexp_all, make_inputs, naive_logsumexp_all

from anymodal.kernels import mip_logsumexp, mip_logsumexp_all


@pytest.fixture(autouse=True)
def _torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_KERNEL", "torch")


SIZES = {2: [13, 9], 3: [7, 5, 6], 4: [4, 3, 5, 2]}


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("chunk_elements", [1 << 22, 23])
def test_float64_outputs_and_gradients(m: int, masked: bool, chunk_elements: int) -> None:
    # 23 numbers per box: one prefix row per box, ranges inside one anchor's tuples.
    check_logsumexp_all(
        SIZES[m], 6, torch.float64, seed=m, masked=masked, tol=1e-10,
        chunk_elements=chunk_elements,
    )  # fmt: skip


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_float32_outputs_and_gradients(m: int, masked: bool) -> None:
    check_logsumexp_all([n + 20 for n in SIZES[m]], 16, torch.float32, seed=10 + m, masked=masked)


@pytest.mark.parametrize("m", [2, 3])
def test_gradcheck(m: int) -> None:
    tensors = [t.requires_grad_() for t in make_inputs(SIZES[m][:m], dim=3, seed=m)]
    scale = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    weights = [torch.linspace(-1, 1, t.shape[0], dtype=torch.float64) for t in tensors]

    def fn(s: torch.Tensor, *factors: torch.Tensor) -> torch.Tensor:
        outs = mip_logsumexp_all(list(factors), s, chunk_elements=7)
        return sum((o * w).sum() for o, w in zip(outs, weights))

    assert torch.autograd.gradcheck(fn, (scale, *tensors))


def test_each_output_is_the_per_anchor_normaliser() -> None:
    factors = make_inputs([9, 8, 7], 5, dtype=torch.float32, seed=3)
    outs = mip_logsumexp_all(factors, 2.0)
    for m, out in enumerate(outs):
        others = [f for j, f in enumerate(factors) if j != m]
        torch.testing.assert_close(out, mip_logsumexp(factors[m], others, 2.0))


def test_only_some_outputs_in_the_loss() -> None:
    leaves = [t.requires_grad_() for t in make_inputs([5, 6, 4], 3, seed=8)]
    refs = [t.detach().clone().requires_grad_() for t in leaves]
    mip_logsumexp_all(leaves, 1.5)[1].sum().backward()
    naive_logsumexp_all(refs, 1.5)[1].sum().backward()
    for got, want in zip(leaves, refs):
        torch.testing.assert_close(got.grad, want.grad)


def test_columns_far_below_the_box_maximum_do_not_underflow() -> None:
    # Positive factors, and the last factor's row 0 negative: every logit of that row lies
    # over 104 below the box maximum, where exp(rowmax - boxmax) * exp(x - rowmax) is 0 in
    # float32; its normaliser must come out exact anyway.
    gen = torch.Generator().manual_seed(4)
    a, b, c = (1 + torch.rand(n, 4, generator=gen) for n in (6, 5, 4))
    c[0] = -c[0]
    outs = mip_logsumexp_all([a, b, c], 20.0)
    refs = naive_logsumexp_all([a.double(), b.double(), c.double()], 20.0)
    assert refs[2][0] < refs[2][1:].min() - 150, "the case must be far below the box maximum"
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-4)


def test_masked_rows_are_minus_infinity() -> None:
    factors = make_inputs([4, 3], 2, dtype=torch.float32, seed=1)
    mask = torch.tensor([True, False, True, True])
    outs = mip_logsumexp_all(factors, 1.0, masks=[mask, None])
    assert math.isinf(outs[0][1].item()) and outs[0][1] < 0
    assert torch.isfinite(outs[0][mask]).all() and torch.isfinite(outs[1]).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f: mip_logsumexp_all(f[:1], 1.0), "at least two tensors"),
        (lambda f: mip_logsumexp_all([f[0], f[1][:, :2]], 1.0), "width"),
        (lambda f: mip_logsumexp_all(f, 1.0, masks=[None]), "list of 2 entries"),
        (
            lambda f: mip_logsumexp_all(f, 1.0, masks=[torch.ones(4), None]),
            r"masks\[0\] must be a bool tensor of shape \(4,\)",
        ),
        (
            lambda f: mip_logsumexp_all(f, 1.0, masks=[None, torch.zeros(3, dtype=torch.bool)]),
            r"factors\[1\] has no rows \(after masking\)",
        ),
        (lambda f: mip_logsumexp_all(f, torch.ones(2)), "scale must hold one number"),
    ],
)
def test_bad_input_is_named(call, match: str) -> None:  # type: ignore[no-untyped-def]
    factors = make_inputs([4, 3], 3, dtype=torch.float32, seed=0)
    with pytest.raises(ValueError, match=match):
        call(factors)
