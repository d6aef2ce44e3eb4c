"""Chunked PyTorch path of :func:`anymodal.kernels.mip_logsumexp`.

The tuple space of one anchor row, ``others_1 x ... x others_K``, is split into
*prefix tuples* ``(j1, ..., j_{K-1})`` and the last factor ``others_K``. A prefix row is
the elementwise product ``anchor[i] * others_1[j1] * ... * others_{K-1}[j_{K-1}]``, and
its logits against every row of ``others_K`` are one matrix product.

Prefix rows are processed in *boxes*: a range of anchors times every prefix tuple, or,
when one anchor already has too many prefix tuples, one anchor times a range of
``others_1`` (and so on down the factors). A box's prefix rows are a broadcast product of
slices of the factors, and its gradients are reductions of that broadcast: no gather or
scatter. Boxes hold about ``chunk_elements`` numbers (``[rows, N_K]`` logits plus
``[rows, D]`` prefix rows), so the ``N^(K+1)`` tensor never exists, neither in the
forward nor in the backward, which recomputes each box's logits from the saved
log-sum-exp instead of keeping the forward's activations (the flash-attention trick).

Cost: ``N * N_1 * ... * N_K * D`` multiply-adds for the forward, three times that for
the backward (recompute, ``P @ others_K`` and ``P^T @ prefix``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from anymodal.kernels.blocks import (
    DEFAULT_CHUNK_ELEMENTS,
    box_views,
    boxes,
    broadcast_product,
    chunk_rows_for,
    compute_dtype,
)

__all__ = ["DEFAULT_CHUNK_ELEMENTS", "ChunkedMIPLogSumExp", "chunked_backward", "chunked_forward"]


def chunked_forward(
    factors: Sequence[Tensor], last: Tensor, scale: Tensor, chunk_elements: int
) -> Tensor:
    """Log-sum-exp per anchor row, box by box (no autograd).

    Args:
        factors: prefix factors, anchor first, already in the compute dtype.
        last: the streamed factor ``others_K``, in the compute dtype.
        scale: 0-d tensor in the compute dtype.
        chunk_elements: numbers per box.

    Shapes:
        factors[m]: ``[N_m, D]``; last: ``[N_K, D]``; returns ``[N]``.
    """
    sizes = [f.shape[0] for f in factors]
    out = torch.full((sizes[0],), -math.inf, dtype=last.dtype, device=last.device)
    scaled_last_t = (last * scale).T
    for box in boxes(sizes, chunk_rows_for(last.shape[0], last.shape[1], chunk_elements)):
        prefix = broadcast_product(box_views(factors, box))
        n_anchor = prefix.shape[0]
        row_lse = torch.logsumexp(prefix.view(-1, last.shape[1]) @ scaled_last_t, dim=1)
        anchor_lse = row_lse.view(n_anchor, -1).logsumexp(dim=1)
        if prefix[0].numel() == math.prod(sizes[1:]) * last.shape[1]:  # whole anchors
            out[box[0]] = anchor_lse
        else:  # part of one anchor's tuples
            out[box[0]] = torch.logaddexp(out[box[0]], anchor_lse)
    return out


def chunked_backward(
    factors: Sequence[Tensor],
    last: Tensor,
    scale: Tensor,
    lse: Tensor,
    grad_out: Tensor,
    chunk_elements: int,
) -> tuple[list[Tensor], Tensor, Tensor]:
    """Gradients of ``sum(grad_out * lse)`` by recomputing each box of logits.

    With ``P`` the softmax over the tuples of anchor ``i``, ``g = grad_out[i]``, ``u`` a
    prefix row and ``Q = P @ last``: ``d u = s g Q``, ``d last = s P^T @ (g u)`` and
    ``d s = sum g u . Q``. ``P`` comes out of a single matrix product,
    ``[u, -lse] @ [s last, 1]^T``, exponentiated in place; ``d u`` reaches each prefix
    factor as a reduction of ``Q`` times the other factors over the box, and
    ``d s = sum_i anchor[i] . d anchor[i] / s``.

    Shapes:
        lse, grad_out: ``[N]``; returns (grads of factors, grad of last ``[N_K, D]``,
        0-d grad of scale).
    """
    sizes = [f.shape[0] for f in factors]
    k, dim = len(factors), last.shape[1]
    grads = [torch.zeros_like(f) for f in factors]
    grad_last = torch.zeros_like(last)
    grad_scale = torch.zeros((), dtype=last.dtype, device=last.device)
    last_aug_t = torch.cat([last * scale, torch.ones_like(last[:, :1])], dim=1).T
    for box in boxes(sizes, chunk_rows_for(last.shape[0], last.shape[1], chunk_elements)):
        views = box_views(factors, box)
        shape = [v.shape[m] for m, v in enumerate(views)]
        g = grad_out[box[0]].view(-1, *([1] * k))  # [b_0, 1, .., 1] with the D axis
        u_aug = torch.empty(*shape, dim + 1, dtype=last.dtype, device=last.device)
        prefix = broadcast_product(views, out=u_aug[..., :dim])
        u_aug[..., dim] = -lse[box[0]].view(-1, *([1] * (k - 1)))
        probs = u_aug.view(-1, dim + 1) @ last_aug_t
        probs.exp_()
        q = (probs @ last).view(*shape, dim)
        prefix.mul_(g)  # g u, in place: u itself is not needed any more
        grad_last.addmm_(probs.T, u_aug.view(-1, dim + 1)[:, :dim])
        del probs, u_aug, prefix
        gviews = [views[0] * g, *views[1:]]  # g folded into the anchor factor
        for m in range(k):
            others = [v for j, v in enumerate(views if m == 0 else gviews) if j != m]
            term = q if not others else q * others[0]
            for v in others[1:]:
                term.mul_(v)
            axes = [j for j in range(k) if j != m]
            red = term.sum(dim=axes) if axes else term.reshape(-1, dim)
            if m == 0:
                red = red.view(-1, dim) * g.view(-1, 1)
                grad_scale += torch.dot(views[0].reshape(-1), red.reshape(-1))
            grads[m][box[m]] += red.view(-1, dim)
    # Scaling once here, not per box: alpha= of addmm_ wants a Python number (a sync).
    for g_m in grads:
        g_m.mul_(scale)
    return grads, grad_last.mul_(scale), grad_scale


class ChunkedMIPLogSumExp(torch.autograd.Function):
    """Autograd wrapper of the chunked path: saves inputs and the output only."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        scale: Tensor,
        chunk_elements: int,
        anchor: Tensor,
        *others: Tensor,
    ) -> Tensor:
        """Log-sum-exp per anchor row; saves the inputs and the result."""
        cdt = compute_dtype(anchor.dtype)
        factors = [anchor.to(cdt), *(o.to(cdt) for o in others[:-1])]
        last = others[-1].to(cdt)
        s = scale.detach().to(cdt).reshape(())
        out = chunked_forward(factors, last, s, chunk_elements)
        ctx.save_for_backward(scale, anchor, *others, out)
        ctx.chunk_elements = chunk_elements
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients from one traversal that recomputes each box's logits."""
        scale, anchor, *others, out = ctx.saved_tensors
        cdt = out.dtype
        factors = [anchor.to(cdt), *(o.to(cdt) for o in others[:-1])]
        last = others[-1].to(cdt)
        s = scale.detach().to(cdt).reshape(())
        grads, grad_last, grad_scale = chunked_backward(
            factors, last, s, out, grad_out.to(cdt), ctx.chunk_elements
        )
        inputs = [anchor, *others]
        all_grads = [*grads, grad_last]
        result: list[Tensor | None] = [
            g.to(x.dtype) if need else None
            for g, x, need in zip(all_grads, inputs, ctx.needs_input_grad[2:])
        ]
        g_scale = grad_scale.to(scale).reshape(scale.shape) if ctx.needs_input_grad[0] else None
        return (g_scale, None, *result)
