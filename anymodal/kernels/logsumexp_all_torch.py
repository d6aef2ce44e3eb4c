"""Chunked PyTorch path of :func:`anymodal.kernels.mip_logsumexp_all`: every axis at once.

``T[i_0, ..., i_{M-1}] = s * sum_d prod_m F_m[i_m, d]`` serves the normalisers of all M
anchors: ``out_m[i] = log sum_{tuples with i_m = i} exp(T)``. One traversal computes them
all. The tensor is walked in the *boxes* of :mod:`anymodal.kernels.blocks`: prefix rows
(products of slices of ``F_0 .. F_{M-2}``) against every row of ``F_{M-1}``, one matrix
product per box (``[rows, D] @ [D, N_{M-1}]``, the shape a BLAS runs near its peak).

Forward, per box of logits ``X [R, C]``: one exponential per entry, shifted by the row
maximum. Row sums give each prefix row's log-sum-exp, which reduces (log-sum-exp over the
other prefix axes of the box) into the running normalisers of axes ``0 .. M-2``; the
column sums of the last axis come from one vector-matrix product with the weights
``exp(rowmax - boxmax)``. A column whose every entry lies ~87 below the box maximum
would underflow there: such columns (detected by their sum) are recomputed exactly.

Backward: the gradient of ``sum_m <g_m, out_m>`` with respect to ``T`` is the single
weight tensor ``W = sum_m g_m[i_m] exp(T - out_m[i_m])``, so each box is recomputed once
and serves all M terms. For the prefix axes ``sum_{m<M-1} g_m exp(T - out_m)`` is
``alpha_r exp(T - mu_r)`` with ``mu_r = min_m out_m`` (>= every entry of row r, so nothing
overflows) and ``alpha_r = sum_m g_m exp(mu_r - out_m)``; the last axis takes a second
exponential. Then ``d prefix = s W @ F_{M-1}``, ``d F_{M-1} = s W^T @ prefix`` and
``d s = sum W * T / s`` (from the prefix rows, without dividing by ``s``).

Cost: ``N_0 * ... * N_{M-1} * D`` multiply-adds for the forward and three times that for
the backward, whatever M: a 1/M of M separate :func:`~anymodal.kernels.mip_logsumexp`
calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from anymodal.kernels.blocks import (
    box_views,
    boxes,
    broadcast_product,
    chunk_rows_for,
    compute_dtype,
)

#: A column sum below this (relative to exp(box max)) may have lost terms to underflow:
#: such a column is recomputed exactly. Terms lost are each below 1.2e-38 (float32's
#: smallest normal number), so above this bound they change a sum by < rows * 1e-13.
_UNDERFLOW = 1e-25


class _Workspace:
    """Flat buffers reused by every box.

    Fresh ``[R, C]`` tensors per box would each be allocated and faulted in again (large
    blocks go to ``mmap``).
    """

    def __init__(self, like: Tensor) -> None:
        self.like = like
        self.buffers: dict[str, Tensor] = {}

    def get(self, name: str, *shape: int) -> Tensor:
        """A tensor of ``shape`` (uninitialised) backed by the buffer ``name``."""
        size = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < size:
            buf = torch.empty(size, dtype=self.like.dtype, device=self.like.device)
            self.buffers[name] = buf
        return buf[:size].view(*shape)


def _prefix_reductions(row_lse: Tensor, lses: list[Tensor], box: Sequence[slice]) -> None:
    """Merge a box's prefix-row log-sum-exps into the running normalisers of axes 0..M-2.

    Shapes:
        row_lse: ``[b_0, ..., b_{M-2}]`` (the box's shape); lses[m]: ``[N_m]``.
    """
    k = row_lse.dim()
    for m in range(k):
        axes = [j for j in range(k) if j != m]
        part = row_lse.logsumexp(dim=axes) if axes else row_lse
        lses[m][box[m]] = torch.logaddexp(lses[m][box[m]], part)


def _column_lse(probs: Tensor, row_max: Tensor, recompute: tuple[Tensor, Tensor]) -> Tensor:
    """Log-sum-exp over the rows of a box for each column, from ``exp(X - row_max)``.

    Args:
        probs: ``exp(X - row_max[:, None])``, ``[R, C]``.
        row_max: the row maxima of ``X``, ``[R]``.
        recompute: ``(prefix rows [R, D], scaled last factor transposed [D, C])``, to
            recompute the columns whose sum underflowed.

    Shapes:
        returns ``[C]``.
    """
    top = row_max.max()
    sums = torch.exp(row_max - top) @ probs
    low = (sums < _UNDERFLOW).nonzero().squeeze(1)
    out = sums.log_().add_(top)
    if low.numel():  # rare: exact log-sum-exp of those columns
        prefix, last_t = recompute
        out[low] = (prefix @ last_t[:, low]).logsumexp(dim=0)
    return out


def forward_all(factors: Sequence[Tensor], scale: Tensor, chunk_elements: int) -> list[Tensor]:
    """The M normalisers in one traversal (no autograd).

    Args:
        factors: the M >= 2 factors, already in the compute dtype.
        scale: 0-d tensor in the compute dtype.
        chunk_elements: numbers per box.

    Shapes:
        factors[m]: ``[N_m, D]``; returns M tensors ``[N_m]``.
    """
    prefix_factors, last = list(factors[:-1]), factors[-1]
    sizes = [f.shape[0] for f in prefix_factors]
    lses = [torch.full((n,), -math.inf, dtype=last.dtype, device=last.device) for n in sizes]
    col_lse = torch.full((last.shape[0],), -math.inf, dtype=last.dtype, device=last.device)
    scaled_last_t = (last * scale).T
    work = _Workspace(last)
    for box in boxes(sizes, chunk_rows_for(last.shape[0], last.shape[1], chunk_elements)):
        views = box_views(prefix_factors, box)
        shape = [v.shape[m] for m, v in enumerate(views)]
        prefix = broadcast_product(views, out=work.get("prefix", *shape, last.shape[1]))
        rows = prefix.view(-1, last.shape[1])
        logits = torch.mm(rows, scaled_last_t, out=work.get("logits", rows.shape[0], last.shape[0]))
        row_max = logits.amax(dim=1)
        probs = logits.sub_(row_max[:, None]).exp_()  # in place: one [R, C] buffer
        row_lse = probs.sum(dim=1).log_().add_(row_max)
        _prefix_reductions(row_lse.view(prefix.shape[:-1]), lses, box)
        col_lse = torch.logaddexp(col_lse, _column_lse(probs, row_max, (rows, scaled_last_t)))
    return [*lses, col_lse]


def _box_weights(
    lses: Sequence[Tensor], grads: Sequence[Tensor], box: Sequence[slice], k: int
) -> tuple[Tensor, Tensor]:
    """``mu_r`` and ``alpha_r`` of the prefix rows of a box (see the module docstring).

    Shapes:
        lses[m], grads[m]: ``[N_m]`` for the prefix axes; returns two ``[R]`` tensors.
    """
    views = []
    for m in range(k):
        shape = [1] * k
        shape[m] = -1
        views.append((lses[m][box[m]].view(shape), grads[m][box[m]].view(shape)))
    mu = views[0][0]
    for lse_v, _ in views[1:]:
        mu = torch.minimum(mu, lse_v)
    alpha = torch.zeros_like(mu)
    for lse_v, g_v in views:
        alpha = alpha + g_v * torch.exp(mu - lse_v)
    full = [max(v[0].shape[m] for v in views) for m in range(k)]
    return mu.expand(full).reshape(-1), alpha.expand(full).reshape(-1)


def _factor_grads(
    q: Tensor,
    views: Sequence[Tensor],
    box: Sequence[slice],
    grads: list[Tensor],
    work: _Workspace,
) -> Tensor:
    """Spread ``d prefix = q`` (unscaled) onto the prefix factors.

    Returns the box's ``sum prefix . q``, which is ``s * d s``.

    Shapes:
        q: ``[b_0, ..., b_{M-2}, D]``; views[m]: broadcastable slices; grads[m]: ``[N_m, D]``.
    """
    k, dim = len(views), q.shape[-1]
    dot = q.new_zeros(())
    for m in range(k):
        others = [v for j, v in enumerate(views) if j != m]
        term = q if not others else torch.mul(q, others[0], out=work.get("term", *q.shape))
        for v in others[1:]:
            term.mul_(v)
        axes = [j for j in range(k) if j != m]
        red = term.sum(dim=axes) if axes else term
        grads[m][box[m]] += red.reshape(-1, dim)
        if m == 0:
            dot = torch.dot(views[0].reshape(-1), red.reshape(-1))
    return dot


def backward_all(
    factors: Sequence[Tensor],
    scale: Tensor,
    lses: Sequence[Tensor],
    grads_out: Sequence[Tensor],
    chunk_elements: int,
) -> tuple[list[Tensor], Tensor]:
    """Gradients of ``sum_m <grads_out[m], lses[m]>``, recomputing each box once.

    Shapes:
        factors[m], returned grads[m]: ``[N_m, D]``; lses[m], grads_out[m]: ``[N_m]``;
        returns the factors' gradients and a 0-d gradient of ``scale``.
    """
    prefix_factors, last = list(factors[:-1]), factors[-1]
    k, dim = len(prefix_factors), last.shape[1]
    sizes = [f.shape[0] for f in prefix_factors]
    grads = [torch.zeros_like(f) for f in factors]
    grad_scale = torch.zeros((), dtype=last.dtype, device=last.device)
    last_aug_t = torch.cat([last * scale, torch.ones_like(last[:, :1])], dim=1).T
    col_shift, col_g = lses[-1][None, :], grads_out[-1][None, :]
    work, n_last = _Workspace(last), last.shape[0]
    for box in boxes(sizes, chunk_rows_for(last.shape[0], last.shape[1], chunk_elements)):
        views = box_views(prefix_factors, box)
        mu, alpha = _box_weights(lses, grads_out, box, k)
        shape = [v.shape[m] for m, v in enumerate(views)]
        u_aug = work.get("u_aug", *shape, dim + 1)
        broadcast_product(views, out=u_aug[..., :dim])
        u_aug[..., dim] = -mu.view(shape)
        u_flat = u_aug.view(-1, dim + 1)
        rows = u_flat.shape[0]
        # s X - mu, [R, C]
        shifted = torch.mm(u_flat, last_aug_t, out=work.get("shifted", rows, n_last))
        # Last axis: g_c exp(s X - lse_c) = g_c exp(shifted + mu - lse_c).
        weights = torch.add(shifted, mu[:, None], out=work.get("weights", rows, n_last))
        weights.sub_(col_shift).exp_().mul_(col_g)
        weights.addcmul_(shifted.exp_(), alpha[:, None])  # + alpha_r exp(s X - mu_r)
        grads[-1].addmm_(weights.T, u_flat[:, :dim])
        q = torch.mm(weights, last, out=work.get("q", rows, dim)).view(*shape, dim)
        grad_scale += _factor_grads(q, views, box, grads, work)
    # Scaling once here, not per box: alpha= of addmm_ wants a Python number (a sync).
    for g_m in grads:
        g_m.mul_(scale)
    return grads, grad_scale


class ChunkedMIPLogSumExpAll(torch.autograd.Function):
    """Autograd wrapper of the one-pass chunked path: saves inputs and outputs only."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        scale: Tensor,
        chunk_elements: int,
        *factors: Tensor,
    ) -> tuple[Tensor, ...]:
        """The M normalisers; saves the inputs and outputs for the backward."""
        cdt = compute_dtype(factors[0].dtype)
        s = scale.detach().to(cdt).reshape(())
        outs = forward_all([f.to(cdt) for f in factors], s, chunk_elements)
        ctx.save_for_backward(scale, *factors, *outs)
        ctx.chunk_elements = chunk_elements
        ctx.n_factors = len(factors)
        return tuple(outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, *grad_outs: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients of the scale and the factors, from one recomputing traversal."""
        scale, *rest = ctx.saved_tensors
        factors, lses = rest[: ctx.n_factors], rest[ctx.n_factors :]
        cdt = lses[0].dtype
        s = scale.detach().to(cdt).reshape(())
        # An output that took no part in the loss has no gradient: zeros.
        g = [torch.zeros_like(o) if go is None else go.to(cdt) for go, o in zip(grad_outs, lses)]
        grads, grad_scale = backward_all(
            [f.to(cdt) for f in factors], s, lses, g, ctx.chunk_elements
        )
        result: list[Tensor | None] = [
            gr.to(x.dtype) if need else None
            for gr, x, need in zip(grads, factors, ctx.needs_input_grad[2:])
        ]
        g_scale = grad_scale.to(scale).reshape(scale.shape) if ctx.needs_input_grad[0] else None
        return (g_scale, None, *result)
