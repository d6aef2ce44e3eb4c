"""The chunked torch path of ``mip_logsumexp`` (``logsumexp_torch``) against the naive einsum."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from kernels_reference import make_inputs, naive_logsumexp

from anymodal.kernels import mip_logsumexp


@pytest.fixture(autouse=True)
def _torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_KERNEL", "torch")


def _sizes(k: int, n: int) -> list[int]:
    """Anchor rows n; the others differ from n and from each other (K = 3 kept small)."""
    base = n if k < 3 else min(n, 9)
    return [n] + [base + 1 + m for m in range(k)]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 7, 33, 130])
@pytest.mark.parametrize("chunked", [False, True])
def test_forward_and_gradients_match_naive(k: int, n: int, chunked: bool) -> None:
    # Small blocks: whole anchors per block (K = 1), or ranges inside one anchor (K >= 2).
    chunk_elements = (97 if n <= 33 else 1 << 14) if chunked else 1 << 22
    anchor, *others = make_inputs(_sizes(k, n), dim=6, seed=k * 1000 + n)
    scale = torch.tensor(1.7, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in [anchor, *others, scale]]
    ref_leaves = [t.clone().requires_grad_() for t in [anchor, *others, scale]]
    weights = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))

    out = mip_logsumexp(leaves[0], leaves[1:-1], leaves[-1], chunk_elements=chunk_elements)
    ref = naive_logsumexp(ref_leaves[0], ref_leaves[1:-1], ref_leaves[-1])
    assert out.shape == (n,) and out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)

    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    for got, want in zip(leaves, ref_leaves):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("chunk_elements", [1 << 22, 5])
def test_gradcheck(k: int, chunk_elements: int) -> None:
    # chunk_elements=5 gives blocks of a single prefix row: ranges inside one anchor.
    tensors = make_inputs([3, 4, 2, 3][: k + 1], dim=3, seed=k)
    tensors.append(torch.tensor(0.8, dtype=torch.float64))
    tensors = [t.requires_grad_() for t in tensors]

    def fn(*args: torch.Tensor) -> torch.Tensor:
        return mip_logsumexp(args[0], list(args[1:-1]), args[-1], chunk_elements=chunk_elements)

    assert torch.autograd.gradcheck(fn, tuple(tensors))


def test_large_scale_is_stable() -> None:
    anchor, b, c = make_inputs([5, 6, 7], dim=4, normalize=True, seed=3)
    out = mip_logsumexp(anchor, [b, c], 500.0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, naive_logsumexp(anchor, [b, c], 500.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_inputs_accumulate_in_float32(dtype: torch.dtype) -> None:
    tensors = make_inputs([7, 8, 9], dim=16, dtype=dtype, normalize=True, seed=5)
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = mip_logsumexp(leaves[0], leaves[1:], 10.0)
    assert out.dtype == torch.float32
    ref = naive_logsumexp(tensors[0].double(), [t.double() for t in tensors[1:]], 10.0)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-4)
    out.sum().backward()
    assert all(t.grad is not None and t.grad.dtype == dtype for t in leaves)


def test_float_scale_equals_tensor_scale_without_grad() -> None:
    anchor, b = make_inputs([4, 5], dim=3)
    a = mip_logsumexp(anchor, [b], 2.5)
    t = mip_logsumexp(anchor, [b], torch.tensor([2.5], dtype=torch.float64))
    torch.testing.assert_close(a, t, rtol=0, atol=0)
    torch.testing.assert_close(a, naive_logsumexp(anchor, [b], 2.5))


def test_scale_gradient_only_when_asked() -> None:
    anchor, b, c = (t.requires_grad_() for t in make_inputs([3, 4, 5], dim=2))
    out = mip_logsumexp(anchor, [b, c], torch.tensor(1.0, dtype=torch.float64))
    out.sum().backward()
    assert anchor.grad is not None and b.grad is not None and c.grad is not None


def test_empty_anchor_gives_empty_output() -> None:
    anchor, b = make_inputs([0, 5], dim=3)
    assert mip_logsumexp(anchor, [b], 1.0).shape == (0,)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda a, b: (a[0], [b], 1.0), "2-D"),
        (lambda a, b: (a, [b[:, :2]], 1.0), "width"),
        (lambda a, b: (a, [b.float()], 1.0), "dtype"),
        (lambda a, b: (a, [], 1.0), "non-empty"),
        (lambda a, b: (a, b, 1.0), "non-empty"),
        (lambda a, b: (a, [b[:0]], 1.0), "no rows"),
        (lambda a, b: (a, [b], torch.ones(2)), "one number"),
        (lambda a, b: (a.long(), [b.long()], 1.0), "floating"),
    ],
)
def test_bad_inputs_are_named(build: Callable[..., tuple], match: str) -> None:
    a, b = make_inputs([3, 4], dim=3)
    with pytest.raises(ValueError, match=match):
        mip_logsumexp(*build(a, b))


@pytest.mark.parametrize("chunk_elements", [1 << 22, 9])
def test_four_others(chunk_elements: int) -> None:
    # K = 4 (M = 5 modalities): only the torch path; tiny boxes split two factors deep.
    tensors = [t.requires_grad_() for t in make_inputs([3, 2, 4, 3, 5], dim=3, seed=9)]
    out = mip_logsumexp(tensors[0], tensors[1:], 0.9, chunk_elements=chunk_elements)
    ref_in = [t.detach().clone().requires_grad_() for t in tensors]
    ref = naive_logsumexp(ref_in[0], ref_in[1:], 0.9)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    for got, want in zip(tensors, ref_in):
        torch.testing.assert_close(got.grad, want.grad)
