"""Volumes of parallelotopes from Gram determinants, computed from matrix products.

``Vol(v_1..v_k) = sqrt(det G)``, ``G_pq = v_p · v_q``. GRAM needs ``V[i, j] = Vol(a_i,
o_1[j], ..., o_{k-1}[j])`` for every anchor row i and every tuple j. Writing
``G = [[g, uᵀ], [u, B]]`` with ``g = a_i·a_i``, ``u_p = a_i·o_p[j]`` (one GEMM per other
modality) and ``B`` the (k-1)×(k-1) Gram matrix of tuple j alone, the Schur complement gives

    det G = g · det B − uᵀ adj(B) u,

where ``det B`` and ``adj(B)`` depend on j only. So the N×N work is ``k-1`` GEMMs and
about ``(k-1)²`` elementwise multiply-adds (with a hand-written backward): no ``N²·k·k``
stack, no batched LU. ``adj(B)`` is in closed form for k ≤ 4 and from cofactor
determinants of the N small (k-1)×(k-1) matrices beyond. Singular tuples (B not
invertible) are fine: nothing is inverted.

:func:`volume_torch_det` is the reference way (ispamm/GRAM ``utils/volume.py``): the
``N²·k·k`` stack and ``torch.det``; tests and the benchmark compare against it.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["adjugate", "gram_determinant", "gram_volume", "volume_torch_det"]


def adjugate(b: list[list[Tensor]]) -> tuple[Tensor, list[list[Tensor]]]:
    """Determinant and adjugate of a batch of small symmetric matrices.

    Args:
        b: ``b[p][q]`` is entry (p, q) for every matrix of the batch.

    Shapes:
        b[p][q]: ``[Q]``; returns ``det: [Q]`` and ``adj[p][q]: [Q]``.
    """
    n = len(b)
    if n == 1:
        return b[0][0], [[torch.ones_like(b[0][0])]]
    if n == 2:
        det = b[0][0] * b[1][1] - b[0][1] * b[1][0]
        return det, [[b[1][1], -b[0][1]], [-b[1][0], b[0][0]]]
    if n == 3:
        c = [[_cofactor3(b, p, q) for q in range(3)] for p in range(3)]
        det = b[0][0] * c[0][0] + b[0][1] * c[0][1] + b[0][2] * c[0][2]
        # adj = cofactor matrix transposed.
        return det, [[c[q][p] for q in range(3)] for p in range(3)]
    matrix = torch.stack([torch.stack(row, dim=-1) for row in b], dim=-2)  # [Q, n, n]
    keep = list(range(n))
    adj: list[list[Tensor]] = []
    for p in range(n):
        row_p = []
        for q in range(n):
            rows = [r for r in keep if r != q]
            cols = [c for c in keep if c != p]
            minor = matrix[:, rows][:, :, cols]
            row_p.append((-1) ** (p + q) * torch.linalg.det(minor))
        adj.append(row_p)
    det = torch.stack([b[0][q] * adj[q][0] for q in range(n)]).sum(dim=0)
    return det, adj


def _cofactor3(b: list[list[Tensor]], p: int, q: int) -> Tensor:
    r0, r1 = [r for r in range(3) if r != p]
    c0, c1 = [c for c in range(3) if c != q]
    minor = b[r0][c0] * b[r1][c1] - b[r0][c1] * b[r1][c0]
    return minor if (p + q) % 2 == 0 else -minor


def _tuple_terms(
    anchor: Tensor, others: list[Tensor]
) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """``g [P, 1]``, ``det B [Q]``, ``adj B [K, K, Q]`` and ``u_p = anchor @ o_pᵀ [P, Q]``."""
    g = (anchor * anchor).sum(-1).unsqueeze(1)
    u = [anchor @ o.T for o in others]
    b = [[(op * oq).sum(-1) for oq in others] for op in others]
    det_b, adj_b = adjugate(b)
    return g, det_b, torch.stack([torch.stack(row) for row in adj_b]), u


def _schur(g: Tensor, det_b: Tensor, adj: Tensor, u: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """``det = g·det B − Σ_p u_p W_p`` with ``W_p = Σ_q adj_pq u_q``; returns (det, W)."""
    det = g * det_b
    ws = []
    for p in range(len(u)):
        w = u[0] * adj[p, 0]
        for q in range(1, len(u)):
            w.addcmul_(u[q], adj[p, q])
        det.addcmul_(u[p], w, value=-1.0)
        ws.append(w)
    return det, ws


class _SchurVolume(torch.autograd.Function):
    """``sqrt(max(g·det B − uᵀ adj(B) u, eps))`` on [P, Q] grids, with a hand-written backward.

    Autograd through the same expression keeps a temporary per product and doubles
    the N² passes; here the forward makes ``K + 1`` grids (the ``W_p`` and the result) and
    the backward a few more passes. ``adj`` must be symmetric (it is the adjugate of a
    Gram matrix), which makes ``∂det/∂u_p = −2 W_p``.
    """

    @staticmethod
    def forward(ctx, eps: float, g: Tensor, det_b: Tensor, adj: Tensor, *u: Tensor) -> Tensor:
        det, ws = _schur(g, det_b, adj, list(u))
        volume = det.clamp_(min=eps).sqrt_()
        ctx.floor = eps**0.5
        ctx.save_for_backward(g, det_b, volume, *u, *ws)
        return volume

    @staticmethod
    def backward(ctx, grad_volume: Tensor):  # type: ignore[override]
        g, det_b, volume, *rest = ctx.saved_tensors
        k = len(rest) // 2
        u, ws = rest[:k], rest[k:]
        # d sqrt(det) = d det / (2 sqrt(det)); zero where the clamp was active.
        grad_det = (grad_volume * 0.5) / volume
        grad_det.masked_fill_(volume <= ctx.floor, 0.0)
        need = ctx.needs_input_grad
        grad_g = (grad_det @ det_b).unsqueeze(1) if need[1] else None
        grad_det_b = grad_det.T @ g.squeeze(1) if need[2] else None
        grad_adj = None
        if need[3]:
            grad_adj = det_b.new_empty((k, k, det_b.shape[0]))
            for p in range(k):
                weighted = grad_det * u[p]
                for q in range(p, k):
                    grad_adj[p, q] = grad_adj[q, p] = -(weighted * u[q]).sum(0)
        grad_u = [(grad_det * w).mul_(-2.0) if need[4 + p] else None for p, w in enumerate(ws)]
        return None, grad_g, grad_det_b, grad_adj, *grad_u


def _compute_dtype(x: Tensor) -> torch.dtype:
    # The determinant cancels large terms: half precision loses it (the reference uses float32).
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def gram_determinant(anchor: Tensor, others: list[Tensor]) -> Tensor:
    """``det G`` of ``(anchor[i], others[0][j], ..., others[-1][j])`` for every i, j.

    Shapes:
        anchor: ``[P, D]``; others: each ``[Q, D]``; returns ``[P, Q]``.
    """
    dtype = _compute_dtype(anchor)
    anchor, others = anchor.to(dtype), [o.to(dtype) for o in others]
    if not others:
        return (anchor * anchor).sum(-1).unsqueeze(1)
    g, det_b, adj, u = _tuple_terms(anchor, others)
    return g * det_b - sum(
        u[p] * sum(adj[p, q] * u[q] for q in range(len(u))) for p in range(len(u))
    )


def gram_volume(anchor: Tensor, others: list[Tensor], eps: float | None = None) -> Tensor:
    """``V[i, j] = Vol(anchor[i], others[0][j], ..., others[-1][j])``.

    The determinant of a Gram matrix is ≥ 0, but rounding can make it slightly negative:
    it is clamped at ``eps`` (default: the dtype's machine epsilon) before the square
    root, so that the value is real and the gradient finite (zero below ``eps``).
    Half-precision inputs are computed in float32.

    Shapes:
        anchor: ``[P, D]``; others: each ``[Q, D]`` (at least one); returns ``[P, Q]``.
    """
    dtype = _compute_dtype(anchor)
    anchor, others = anchor.to(dtype), [o.to(dtype) for o in others]
    floor = torch.finfo(dtype).eps if eps is None else eps
    g, det_b, adj, u = _tuple_terms(anchor, others)
    return _SchurVolume.apply(floor, g, det_b, adj, *u)


def volume_torch_det(anchor: Tensor, others: list[Tensor]) -> Tensor:
    """The reference GRAM volume: an ``[P, Q, k, k]`` Gram stack and ``torch.det``.

    Slow and memory hungry (``P·Q·k²`` entries, a batched LU); kept for tests and the
    benchmark. Its square root uses ``abs`` as the reference code does.

    Shapes:
        anchor: ``[P, D]``; others: each ``[Q, D]``; returns ``[P, Q]``.
    """
    p, q = anchor.shape[0], others[0].shape[0]
    aa = (anchor * anchor).sum(-1).unsqueeze(1).expand(p, q)
    ao = [anchor @ o.T for o in others]
    oo = [[(x * y).sum(-1).unsqueeze(0).expand(p, q) for y in others] for x in others]
    first = torch.stack([aa, *ao], dim=-1)
    rest = [torch.stack([ao[r], *oo[r]], dim=-1) for r in range(len(others))]
    gram = torch.stack([first, *rest], dim=-2)  # [P, Q, k, k]
    return torch.sqrt(torch.abs(torch.det(gram)))
