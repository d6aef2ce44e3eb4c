"""Chunked PyTorch path of :func:`anymodal.kernels.mip_topk`.

The ``A_1 x ... x A_K`` tuple table of a query is scored one block at a time: a block is
``q_block x prefix_chunk`` prefix rows (``query * factors_1[j1] * ... *
factors_{K-1}[j_{K-1}]``) against every row of ``factors_K``, reduced at once to its own
top-k and merged into the running top-k (:class:`anymodal.kernels.running_topk.RunningTopK`).
The largest temporary is a block of about ``chunk_elements`` scores; the full table per
query never exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from anymodal.kernels.blocks import DEFAULT_CHUNK_ELEMENTS, compute_dtype
from anymodal.kernels.running_topk import RunningTopK


def prefix_rows(factors: Sequence[Tensor], p0: int, p1: int, dim: int, like: Tensor) -> Tensor:
    """Elementwise products of the prefix tuples ``p0..p1`` (row-major over ``factors``).

    With no prefix factor (K = 1) the single prefix is a row of ones.

    Shapes:
        factors[m]: ``[A_m, D]``; returns ``[p1 - p0, D]``.
    """
    if not factors:
        return torch.ones(p1 - p0, dim, dtype=like.dtype, device=like.device)
    flat = torch.arange(p0, p1, device=like.device)
    out: Tensor | None = None
    for m in range(len(factors) - 1, -1, -1):
        n = factors[m].shape[0]
        rows = factors[m].to(like.dtype)[flat % n]
        flat = flat // n
        out = rows if out is None else out * rows
    assert out is not None
    return out


def unravel(flat: Tensor, sizes: Sequence[int]) -> Tensor:
    """Flat row-major tuple numbers to per-factor indices.

    Shapes:
        flat: ``[...]``; returns ``[..., len(sizes)]`` (int64).
    """
    parts = []
    rest = flat
    for n in reversed(sizes):
        parts.append(rest % n)
        rest = rest // n
    return torch.stack(parts[::-1], dim=-1)


def topk_chunked(
    query: Tensor,
    factors: Sequence[Tensor],
    k: int,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """The ``k`` best tuples per query, streamed in blocks (torch only).

    Args:
        query: query rows.
        factors: the K candidate sets; a tuple's score is
            ``sum_d query[d] * prod_k factors[k][j_k, d]``.
        k: tuples to return per query (validated by the caller).
        chunk_elements: scores per block.

    Shapes:
        query: ``[Q, D]``; factors[m]: ``[A_m, D]``; returns values ``[Q, k]`` (float32,
        float64 for float64 inputs) sorted best first, and indices ``[Q, k, K]``.
    """
    cdt = compute_dtype(query.dtype)
    q_all = query.to(cdt)
    last = factors[-1].to(cdt)
    prefix_factors = list(factors[:-1])
    n_prefix = math.prod(f.shape[0] for f in prefix_factors)
    n_last = last.shape[0]
    rows_per_block = max(1, chunk_elements // (n_last + q_all.shape[1]))
    p_chunk = min(n_prefix, rows_per_block)
    q_block = max(1, rows_per_block // p_chunk)
    values, flats = [], []
    for q0 in range(0, q_all.shape[0], q_block):
        q = q_all[q0 : q0 + q_block]
        top = RunningTopK(k)
        for p0 in range(0, n_prefix, p_chunk):
            p1 = min(p0 + p_chunk, n_prefix)
            rows = prefix_rows(prefix_factors, p0, p1, q.shape[1], last)
            # [q, p, D] @ [D, A_K] -> [q, p * A_K], flat tuple number p * A_K + j_K.
            scores = ((q[:, None, :] * rows[None]) @ last.T).reshape(q.shape[0], -1)
            top.push(scores, offset=p0 * n_last)
        best_v, best_i = top.result()
        values.append(best_v)
        flats.append(best_i)
    sizes = [f.shape[0] for f in factors]
    return torch.cat(values), unravel(torch.cat(flats), sizes)
