"""Blocks of the torch paths: boxes of prefix rows, each one matrix product.

The tuples of factors ``F_0 x ... x F_{K-1} x F_K`` are walked as *prefix rows*, the
elementwise products ``F_0[i_0] * ... * F_{K-1}[i_{K-1}]``, against every row of the last
factor ``F_K``: the logits of a block of prefix rows are ``[rows, D] @ [D, N_K]``, the
shape a BLAS runs near its peak. Prefix rows are processed in *boxes*: a range of the
first factor times every tuple of the others, or, when that is already too many rows,
single indices on the leading factors and a range on the next. A box's prefix rows are a
broadcast product of slices of the factors and its gradients are reductions of that
broadcast: no gather or scatter. Used by :mod:`anymodal.kernels.logsumexp_torch` and
:mod:`anymodal.kernels.logsumexp_all_torch`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import product

import torch
from torch import Tensor

#: Numbers per box (4 Mi: 16 MiB in float32). The torch path's peak extra memory is a
#: few times this, whatever N.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 stays float64 (gradcheck), everything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def chunk_rows_for(n_last: int, dim: int, chunk_elements: int) -> int:
    """Prefix rows per box.

    A box's logits (``N_K`` per row) and its prefix rows and their gradients (a few ``D``
    per row) hold about ``chunk_elements`` numbers.
    """
    return max(1, chunk_elements // (n_last + dim))


def boxes(sizes: Sequence[int], chunk_rows: int) -> Iterator[list[slice]]:
    """Cover the prefix tuples with boxes of at most ``chunk_rows`` rows (when possible).

    A box is one slice per prefix factor (anchor first): single indices on the leading
    factors, a range on one factor, everything on the factors after it; boxes come in
    row-major order. The range is on the first factor whose trailing tuples fit.
    """
    tail = [math.prod(sizes[m + 1 :]) for m in range(len(sizes))]
    axis = next(m for m in range(len(sizes)) if tail[m] <= chunk_rows)
    step = max(1, chunk_rows // tail[axis])
    rest = [slice(None)] * (len(sizes) - axis - 1)
    for lead in product(*(range(n) for n in sizes[:axis])):
        for s0 in range(0, sizes[axis], step):
            span = slice(s0, min(s0 + step, sizes[axis]))
            yield [slice(i, i + 1) for i in lead] + [span] + rest


def box_views(factors: Sequence[Tensor], box: Sequence[slice]) -> list[Tensor]:
    """Each factor's slice, shaped to broadcast over the box: ``[1, .., b_m, .., 1, D]``."""
    k = len(factors)
    views = []
    for m, (f, sl) in enumerate(zip(factors, box)):
        block = f[sl]
        views.append(block.view(*([1] * m), block.shape[0], *([1] * (k - m - 1)), f.shape[1]))
    return views


def broadcast_product(views: Sequence[Tensor], out: Tensor | None = None) -> Tensor:
    """Elementwise product of broadcastable views (into ``out`` when given)."""
    # Views have one shape length and sizes 1 or full (torch.broadcast_shapes would import
    # sympy on first use: seconds).
    full = [max(sizes) for sizes in zip(*(v.shape for v in views))]
    if out is None:
        out = torch.empty(full, dtype=views[0].dtype, device=views[0].device)
    if len(views) > 1 and [max(a, b) for a, b in zip(views[0].shape, views[1].shape)] == full:
        torch.mul(views[0], views[1], out=out)
        rest = views[2:]
    else:
        out.copy_(views[0].expand(full))
        rest = views[1:]
    for v in rest:
        out.mul_(v)
    return out
