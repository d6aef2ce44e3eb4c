"""Naive references for the kernels: the full ``N^(K+1)`` tensor, built with einsum.

Only the tests use them: they are what the kernels must never do at scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_LETTERS = "jklmn"


def naive_logits(anchor: Tensor, others: Sequence[Tensor]) -> Tensor:
    """Every MIP of an anchor row with a tuple of ``others``.

    Shapes:
        anchor: ``[N, D]``; others[k]: ``[N_k, D]``; returns ``[N, N_1, ..., N_K]``.
    """
    idx = _LETTERS[: len(others)]
    spec = "id," + ",".join(f"{c}d" for c in idx) + "->i" + idx
    return torch.einsum(spec, anchor, *others)


def naive_logsumexp(anchor: Tensor, others: Sequence[Tensor], scale: Tensor | float) -> Tensor:
    """``log sum_{tuples} exp(scale * MIP)`` per anchor row. Shapes: returns ``[N]``."""
    logits = naive_logits(anchor, others) * scale
    return logits.reshape(anchor.shape[0], -1).logsumexp(dim=1)


def naive_scores(query: Tensor, factors: Sequence[Tensor]) -> Tensor:
    """Flat row-major table of tuple scores. Shapes: returns ``[Q, A_1 * ... * A_K]``."""
    return naive_logits(query, factors).reshape(query.shape[0], -1)


def tuple_scores(query: Tensor, factors: Sequence[Tensor], indices: Tensor) -> Tensor:
    """Scores of the given tuples, recomputed row by row.

    Shapes:
        indices: ``[Q, k, K]``; returns ``[Q, k]`` in float64.
    """
    prod = query.double()[:, None, :]
    for m, f in enumerate(factors):
        prod = prod * f.double()[indices[..., m]]
    return prod.sum(-1)


def make_inputs(
    sizes: Sequence[int],
    dim: int,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    normalize: bool = False,
    device: str = "cpu",
) -> list[Tensor]:
    """Random factors ``[n, dim]`` for each size (L2-normalised rows when asked)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        t = torch.randn(n, dim, generator=gen, dtype=torch.float64)
        if normalize:
            t = torch.nn.functional.normalize(t, dim=1)
        out.append(t.to(device=device, dtype=dtype))
    return out


#: Tolerances against the float64 reference, by input dtype (bfloat16 keeps 8 bits).
TOL = {torch.float64: 1e-9, torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 6e-2}


def check_logsumexp(
    sizes: Sequence[int],
    dim: int,
    dtype: torch.dtype,
    seed: int,
    device: str = "cpu",
    tol: float | None = None,
) -> None:
    """``mip_logsumexp`` on the current path: forward and every gradient (scale included)
    against float64 autograd through the naive tensor, from the same rounded inputs."""
    from anymodal.kernels import mip_logsumexp

    normalize = dtype not in (torch.float32, torch.float64)
    tensors = make_inputs(sizes, dim, dtype=dtype, seed=seed, normalize=normalize, device=device)
    scale = 4.0 if normalize else 1.3
    leaves = [t.clone().requires_grad_() for t in tensors]
    s = torch.tensor(scale, device=device, requires_grad=True)
    ref_leaves = [t.detach().double().requires_grad_() for t in tensors]
    ref_s = torch.tensor(scale, dtype=torch.float64, device=device, requires_grad=True)
    weights = torch.linspace(-1.0, 2.0, sizes[0], dtype=torch.float64, device=device)

    out = mip_logsumexp(leaves[0], leaves[1:], s)
    ref = naive_logsumexp(ref_leaves[0], ref_leaves[1:], ref_s)
    assert out.shape == (sizes[0],) and out.dtype == torch.float32
    tol = TOL[dtype] if tol is None else tol
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)

    (out * weights.float()).sum().backward()
    (ref * weights).sum().backward()
    for got, want in zip([*leaves, s], [*ref_leaves, ref_s]):
        assert got.grad is not None and got.grad.dtype == got.dtype
        # Gradients are compared relative to their largest entry.
        bound = tol * max(1.0, want.grad.abs().max().item())
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=tol, atol=bound)


def check_topk(
    query: Tensor,
    factors: Sequence[Tensor],
    k: int,
    values: Tensor,
    indices: Tensor,
    tol: float = 1e-5,
) -> None:
    """Values are the brute-force top-k, sorted, and the returned tuples really score
    them, each tuple once."""
    n_q = query.shape[0]
    assert values.shape == (n_q, k)
    assert indices.shape == (n_q, k, len(factors)) and indices.dtype == torch.int64
    want = naive_scores(query.double(), [f.double() for f in factors]).topk(k, dim=1).values
    torch.testing.assert_close(values.double(), want, rtol=tol, atol=tol)
    assert (values[:, :-1] >= values[:, 1:]).all(), "values are sorted best first"
    for m, f in enumerate(factors):
        assert 0 <= indices[..., m].min() and indices[..., m].max() < f.shape[0]
    got = tuple_scores(query, factors, indices)
    torch.testing.assert_close(got, values.double(), rtol=tol, atol=tol)
    for q in range(n_q):
        assert len({tuple(t) for t in indices[q].tolist()}) == k


def naive_logsumexp_all(
    factors: Sequence[Tensor], scale: Tensor | float, masks: Sequence[Tensor | None] | None = None
) -> list[Tensor]:
    """Every axis's log-sum-exp of the full ``N_0 x ... x N_{M-1}`` tensor.

    Rows masked out get a logit of -inf in every tuple, so their own output is -inf.

    Shapes:
        factors[m]: ``[N_m, D]``; returns M tensors ``[N_m]``.
    """
    logits = naive_logits(factors[0], factors[1:]) * scale
    k = len(factors)
    for m, mask in enumerate(masks or [None] * k):
        if mask is not None:
            shape = [1] * k
            shape[m] = -1
            logits = logits.masked_fill(~mask.view(shape), float("-inf"))
    return [logits.logsumexp(dim=[j for j in range(k) if j != m]) for m in range(k)]


def check_logsumexp_all(
    sizes: Sequence[int],
    dim: int,
    dtype: torch.dtype,
    seed: int,
    masked: bool = False,
    tol: float | None = None,
    device: str = "cpu",
    **kwargs: object,
) -> None:
    """``mip_logsumexp_all`` on the current path: every output and every gradient (scale
    included) against float64 autograd through the naive tensor, from the same inputs.

    With ``masked``, about a third of each factor's rows (never all) are masked out; their
    outputs must be -inf and their gradients zero.
    """
    from anymodal.kernels import mip_logsumexp_all

    gen = torch.Generator().manual_seed(seed)
    normalize = dtype not in (torch.float32, torch.float64)
    tensors = make_inputs(sizes, dim, dtype=dtype, seed=seed, normalize=normalize, device=device)
    masks = None
    if masked:
        masks = [torch.rand(n, generator=gen) > 0.33 for n in sizes]
        for mask in masks:
            mask[0] = True  # at least one row each
        masks = [mask.to(device) for mask in masks]
    scale = 4.0 if normalize else 1.3
    leaves = [t.clone().requires_grad_() for t in tensors]
    s_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    s = torch.tensor(scale, dtype=s_dtype, device=device, requires_grad=True)
    ref_leaves = [t.detach().double().requires_grad_() for t in tensors]
    ref_s = torch.tensor(scale, dtype=torch.float64, device=device, requires_grad=True)
    weights = [torch.randn(n, generator=gen, dtype=torch.float64).to(device) for n in sizes]

    outs = mip_logsumexp_all(leaves, s, masks=masks, **kwargs)  # type: ignore[arg-type]
    refs = naive_logsumexp_all(ref_leaves, ref_s, masks)
    tol = TOL[dtype] if tol is None else tol
    want_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    for out, ref in zip(outs, refs):
        assert out.dtype == want_dtype and out.shape == ref.shape
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)
    # Masked rows are -inf: their weight must not enter the loss (inf * 0 is nan).
    loss = sum(
        (torch.where(r.isinf(), 0.0, o.double()) * w).sum() for o, r, w in zip(outs, refs, weights)
    )
    ref_loss = sum((torch.where(r.isinf(), 0.0, r) * w).sum() for r, w in zip(refs, weights))
    loss.backward()
    ref_loss.backward()
    for got, want in zip([*leaves, s], [*ref_leaves, ref_s]):
        assert got.grad is not None and got.grad.dtype == got.dtype
        bound = tol * max(1.0, want.grad.abs().max().item())
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=tol, atol=bound)
    if masks is not None:
        for leaf, mask in zip(leaves, masks):
            assert leaf.grad is not None and (leaf.grad[~mask] == 0).all()
