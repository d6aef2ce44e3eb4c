"""Fused Triton kernels for :func:`anymodal.kernels.mip_logsumexp` (K = 1, 2, 3).

Roles. The logits of one anchor row are a matrix product between a *row* factor and a
*column* factor, the row factor modulated elementwise by an *effective anchor* ``e``:

* K = 1: ``logits[i, k] = anchor[i] . others_1[k]`` — rows = anchor, no ``e``, the
  kernel's per-row log-sum-exp is the answer.
* K = 2: ``logits_i[j, k] = (anchor[i] * others_1[j]) . others_2[k]`` — ``e = anchor[i]``,
  rows = ``others_1``, columns = ``others_2``.
* K = 3: ``e = anchor[i] * others_1[j1]`` (one program per ``(i, j1)``), rows =
  ``others_2``, columns = ``others_3``: ``N * N_1`` effective anchors, each a K = 2
  problem, so the cost is ``N * N_1 * N_2 * N_3 * D``.

Forward (flash-attention pattern): a program owns one effective anchor and a block of
rows, streams the column factor block by block through ``tl.dot`` and an online
log-sum-exp (base 2), and writes one partial log-sum-exp; a ``[N, blocks]`` reduction
in torch finishes it. Nothing of size ``N^(K+1)`` is ever written.

Backward: recomputes each logits tile from the saved log-sum-exp. With
``W = g_i * exp(s X - lse_i)``, one kernel computes for a block of rows
``d rows[j] = s * sum_e e * (W @ cols)[j]``, ``d e = s * sum_j rows[j] * (W @ cols)[j]``
and ``d s = sum W * X``; the same kernel with rows and columns swapped gives
``d cols`` (``X`` is symmetric in the two roles). Sums across programs use float32
atomics, so gradients are not bitwise deterministic.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from anymodal.kernels.triton_common import (
    build,
    check_mode,
    dot_block,
    dot_dtype,
    dot_precision,
    sm_count,
)
from anymodal.kernels.triton_kernels import mip_lse_all_fwd, mip_lse_bwd, mip_lse_fwd


class _Roles:
    """Which tensor plays which role for one K (see the module docstring).

    Shapes:
        e1: ``[N, D]`` (or a dummy); e2: ``[N_1, D]`` (K = 3); rows: ``[R, D]``;
        cols: ``[C, D]``; ``n_e`` effective anchors, ``group`` of them per anchor row.
    """

    def __init__(self, anchor: Tensor, others: list[Tensor]) -> None:
        k = len(others)
        self.k = k
        self.has_e = k >= 2
        self.has_e2 = k == 3
        self.e1 = anchor
        self.e2 = others[0] if k == 3 else anchor
        self.rows = anchor if k == 1 else others[-2]
        self.cols = others[-1]
        self.group = others[0].shape[0] if k == 3 else 1
        self.n_e = 1 if k == 1 else anchor.shape[0] * self.group
        #: sizes of the axes before the column factor: ``[N, N_1, .., N_{K-1}]``
        self.prefix_sizes = [anchor.shape[0], *(o.shape[0] for o in others[:-1])]


#: Tile sizes under Triton's interpreter, where every operation costs about half a
#: millisecond whatever its size, so large tiles mean fewer operations. Tests shrink them
#: to reach the multi-tile code paths.
INTERPRETER_TILES = {"BLOCK_R": 32, "BLOCK_C": 32, "BLOCK_D": 64, "BLOCK_DO": 64}


def _config(dim: int, dtype: torch.dtype, interpret: bool, backward: bool) -> dict[str, int]:
    """Tile sizes and launch options for width ``dim``.

    GPU values follow flash-attention practice; they have not been tuned on a GPU yet.
    Forward: the whole width in one tile up to 256 (half precision) so the modulated rows
    are loaded once per program, 128 rows per tile. Backward: the output width
    (``BLOCK_DO``) covers D up to 256 too, because every output tile of a program
    recomputes the logits; two ``[BLOCK_R, BLOCK_DO]`` float32 accumulators then limit
    the rows per tile to 32-64.
    """
    if interpret:
        tiles = INTERPRETER_TILES
        return {
            "BLOCK_R": tiles["BLOCK_R"],
            "BLOCK_C": tiles["BLOCK_C"],
            "BLOCK_D": dot_block(dim, tiles["BLOCK_D"]),
            "BLOCK_DO": dot_block(dim, tiles["BLOCK_DO"]),
            "num_warps": 4,
            "num_stages": 1,
        }
    half = dtype != torch.float32
    block_d = dot_block(dim, 256 if half else 128)
    block_do = dot_block(dim, 256 if half else 128)
    if backward:
        block_r = 64 if half and block_do <= 128 else 32
    else:
        block_r = 128 if half else 64
    return {
        "BLOCK_R": block_r,
        "BLOCK_C": 64,
        "BLOCK_D": block_d,
        "BLOCK_DO": block_do,
        "num_warps": 8,
        "num_stages": 2,
    }


def _forward(roles: _Roles, scale: Tensor) -> Tensor:
    """Log-sum-exp per anchor row, float32. Shapes: returns ``[N]``."""
    rows, cols = roles.rows, roles.cols
    dim = rows.shape[1]
    interpret = check_mode(rows)
    cfg = _config(dim, rows.dtype, interpret, backward=False)
    n_row_blocks = -(-rows.shape[0] // cfg["BLOCK_R"])
    reduce_rows = roles.k >= 2
    if reduce_rows:
        out = torch.empty(roles.n_e, n_row_blocks, dtype=torch.float32, device=rows.device)
    else:
        out = torch.empty(rows.shape[0], dtype=torch.float32, device=rows.device)
    kernel = build(mip_lse_fwd, interpret)
    kernel[(roles.n_e, n_row_blocks)](
        roles.e1, roles.e2, rows, cols, scale, out,
        rows.shape[0], cols.shape[0], dim, roles.group, n_row_blocks,
        HAS_E=roles.has_e, HAS_E2=roles.has_e2, REDUCE_ROWS=reduce_rows,
        ONE_D=dim <= cfg["BLOCK_D"], BLOCK_R=cfg["BLOCK_R"], BLOCK_C=cfg["BLOCK_C"],
        BLOCK_D=cfg["BLOCK_D"], PRECISION=dot_precision(rows.dtype),
        DOT_DTYPE=dot_dtype(rows.dtype, interpret),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    if not reduce_rows:
        return out
    n_anchor = roles.n_e // roles.group
    return out.view(n_anchor, roles.group * n_row_blocks).logsumexp(dim=1)


def _backward_pass(
    roles: _Roles, swap: bool, scale: Tensor, lse: Tensor, grad: Tensor,
    want_de: bool, want_ds: bool, last: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:  # fmt: skip
    """One launch of the backward kernel: gradient of the row factor (+ ``d e``, ``d s``).

    ``swap`` exchanges the row and column roles, which yields the column factor's
    gradient. ``last`` (every axis at once): the column factor's ``(lse, grad)``, with
    ``lse``/``grad`` then the ``mu``/``alpha`` of each (effective anchor, row) (modes 3
    and 4 of the kernel). Shapes: returns ``[rows, D]``, ``[n_e, D]`` or None, ``[1]`` or
    None.
    """
    rows, cols = (roles.cols, roles.rows) if swap else (roles.rows, roles.cols)
    dim = rows.shape[1]
    interpret = check_mode(rows)
    cfg = _config(dim, rows.dtype, interpret, backward=True)
    dev = rows.device
    drows = torch.zeros(rows.shape[0], dim, dtype=torch.float32, device=dev)
    de = torch.zeros(roles.n_e, dim, dtype=torch.float32, device=dev) if want_de else drows
    ds = torch.zeros(1, dtype=torch.float32, device=dev)
    n_row_blocks = -(-rows.shape[0] // cfg["BLOCK_R"])
    n_out_blocks = -(-dim // cfg["BLOCK_DO"])
    # Split the loop over effective anchors so that a GPU gets ~4 programs per SM.
    e_split = max(1, min(roles.n_e, 4 * sm_count(rows) // (n_row_blocks * n_out_blocks)))
    lse_mode = 0 if roles.has_e else (2 if swap else 1)
    lse2, grad2 = last if last is not None else (lse, grad)
    if last is not None:
        lse_mode = 4 if swap else 3
    kernel = build(mip_lse_bwd, interpret)
    kernel[(n_row_blocks, n_out_blocks, e_split)](
        roles.e1, roles.e2, rows, cols, scale, lse, grad, lse2, grad2, drows, de, ds,
        roles.n_e, rows.shape[0], cols.shape[0], dim, roles.group, e_split,
        HAS_E=roles.has_e, HAS_E2=roles.has_e2, LSE_MODE=lse_mode, COMPUTE_DE=want_de,
        COMPUTE_DS=want_ds, ONE_D=dim <= cfg["BLOCK_D"], BLOCK_R=cfg["BLOCK_R"],
        BLOCK_C=cfg["BLOCK_C"], BLOCK_D=cfg["BLOCK_D"], BLOCK_DO=cfg["BLOCK_DO"],
        PRECISION=dot_precision(rows.dtype),
        DOT_DTYPE=dot_dtype(rows.dtype, interpret), num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
    )  # fmt: skip
    return drows, (de if want_de else None), (ds if want_ds else None)


class TritonMIPLogSumExp(torch.autograd.Function):
    """Autograd wrapper of the fused kernels: saves the inputs and the log-sum-exp."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, scale: Tensor, anchor: Tensor, *others: Tensor
    ) -> Tensor:
        """Log-sum-exp per anchor row; saves the inputs and the result."""
        anchor = anchor.contiguous()
        others = tuple(o.contiguous() for o in others)
        s = scale.detach().to(device=anchor.device, dtype=torch.float32).reshape(1)
        out = _forward(_Roles(anchor, list(others)), s)
        ctx.save_for_backward(scale, anchor, *others, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_out: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients from one or two launches that recompute the logits."""
        scale, anchor, *others, lse = ctx.saved_tensors
        roles = _Roles(anchor, others)
        s = scale.detach().to(device=anchor.device, dtype=torch.float32).reshape(1)
        g = grad_out.to(torch.float32).contiguous()
        need_scale, need_anchor, *need_others = ctx.needs_input_grad
        k = roles.k
        # Pass 1: rows role (anchor for K=1, others[-2] otherwise), d e (-> anchor and, for
        # K=3, others[0]) and d scale. Pass 2 (swapped): the column role, others[-1].
        need_e = k >= 2 and (need_anchor or (k == 3 and need_others[0]))
        drows, de, ds = _backward_pass(roles, False, s, lse, g, need_e, need_scale)
        dcols = None
        if need_others[-1]:
            dcols, _, _ = _backward_pass(roles, True, s, lse, g, False, False)
        out = _input_grads(roles, [anchor, *others], [need_anchor, *need_others], drows, de, dcols)
        g_scale = ds.to(scale).reshape(scale.shape) if ds is not None else None
        return (g_scale, *out)


def _input_grads(
    roles: _Roles, inputs: list[Tensor], needs: list[bool],
    drows: Tensor, de: Tensor | None, dcols: Tensor | None,
) -> list[Tensor | None]:  # fmt: skip
    """The inputs' gradients from the roles' (row factor, effective anchor, column factor).

    For K = 3 the effective anchor is ``anchor[i] * others_1[j]``: its gradient splits
    into both by the product rule.
    """
    k = roles.k
    grads: list[Tensor | None] = [None] * (k + 1)  # anchor, others...
    grads[-1] = dcols
    if k == 1:
        grads[0] = drows
    else:
        grads[-2] = drows
        if k == 2:
            grads[0] = de
        elif de is not None:
            de3 = de.view(inputs[0].shape[0], roles.group, -1)
            grads[0] = torch.einsum("ijd,jd->id", de3, inputs[1].float())
            grads[1] = torch.einsum("ijd,id->jd", de3, inputs[0].float())
    return [
        g_.to(x.dtype) if (g_ is not None and need) else None
        for g_, x, need in zip(grads, inputs, needs)
    ]


def triton_mip_logsumexp(anchor: Tensor, others: list[Tensor], scale: Tensor) -> Tensor:
    """Fused log-sum-exp (see :func:`anymodal.kernels.mip_logsumexp`), K in 1..3.

    Shapes:
        anchor: ``[N, D]``; others[k]: ``[N_k, D]``; returns ``[N]`` float32.
    """
    if not 1 <= len(others) <= 3:
        raise ValueError(f"the Triton path handles 1 to 3 other factors, got {len(others)}")
    if anchor.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float32, device=anchor.device)
    return TritonMIPLogSumExp.apply(scale, anchor, *others)


def _forward_all(roles: _Roles, scale: Tensor) -> list[Tensor]:
    """Every axis's log-sum-exp from one launch (``mip_lse_all_fwd``), float32.

    The kernel writes each (effective anchor, row) log-sum-exp and, per program, a running
    log-sum-exp of each column; the prefix axes reduce the first here, the column factor
    the second. Shapes: returns M tensors ``[N_m]``.
    """
    rows, cols = roles.rows, roles.cols
    dim, n_rows, n_cols = rows.shape[1], rows.shape[0], cols.shape[0]
    interpret = check_mode(rows)
    cfg = _config(dim, rows.dtype, interpret, backward=False)
    n_row_blocks = -(-n_rows // cfg["BLOCK_R"])
    # Split the effective anchors so that a GPU gets ~4 programs per SM.
    e_split = max(1, min(roles.n_e, 4 * sm_count(rows) // n_row_blocks))
    dev = rows.device
    row_out = torch.empty(roles.n_e, n_rows, dtype=torch.float32, device=dev)
    col_m = torch.full((e_split * n_row_blocks, n_cols), -math.inf, device=dev)
    col_l = torch.zeros(e_split * n_row_blocks, n_cols, device=dev)
    kernel = build(mip_lse_all_fwd, interpret)
    kernel[(n_row_blocks, e_split)](
        roles.e1, roles.e2, rows, cols, scale, row_out, col_m, col_l,
        roles.n_e, n_rows, n_cols, dim, roles.group, e_split, n_row_blocks,
        HAS_E=roles.has_e, HAS_E2=roles.has_e2, ONE_D=dim <= cfg["BLOCK_D"],
        BLOCK_R=cfg["BLOCK_R"], BLOCK_C=cfg["BLOCK_C"], BLOCK_D=cfg["BLOCK_D"],
        PRECISION=dot_precision(rows.dtype), DOT_DTYPE=dot_dtype(rows.dtype, interpret),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    last = ((col_m + torch.log2(col_l)) * math.log(2.0)).logsumexp(dim=0)
    table = row_out.view(*roles.prefix_sizes)  # [N_0, ..., N_{M-2}]
    k = table.dim()
    prefix = [
        table.logsumexp(dim=[j for j in range(k) if j != m]) if k > 1 else table for m in range(k)
    ]
    return [*prefix, last]


def _row_weights(lses: list[Tensor], grads: list[Tensor]) -> tuple[Tensor, Tensor]:
    """``mu`` and ``alpha`` of every prefix tuple (see :mod:`anymodal.kernels.logsumexp_all_torch`).

    ``mu = min_m lse_m`` bounds every logit of the tuple's row, so ``exp(s x - mu)``
    cannot overflow; ``alpha = sum_m g_m exp(mu - lse_m)``. Shapes: lses[m], grads[m]
    ``[N_m]`` for the prefix axes; returns two flat ``[N_0 * ... * N_{M-2}]`` tensors.
    """
    k = len(lses)
    views = []
    for m in range(k):
        shape = [1] * k
        shape[m] = -1
        views.append((lses[m].view(shape), grads[m].view(shape)))
    mu = views[0][0]
    for lse_v, _ in views[1:]:
        mu = torch.minimum(mu, lse_v)
    alpha = torch.zeros_like(mu)
    for lse_v, g_v in views:
        alpha = alpha + g_v * torch.exp(mu - lse_v)
    full = [lse.shape[0] for lse in lses]
    return mu.expand(full).contiguous().view(-1), alpha.expand(full).contiguous().view(-1)


class TritonMIPLogSumExpAll(torch.autograd.Function):
    """Autograd wrapper of the one-pass kernels: saves the inputs and the M outputs."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, scale: Tensor, *factors: Tensor
    ) -> tuple[Tensor, ...]:
        """The M normalisers from one traversal."""
        factors = tuple(f.contiguous() for f in factors)
        s = scale.detach().to(device=factors[0].device, dtype=torch.float32).reshape(1)
        outs = _forward_all(_Roles(factors[0], list(factors[1:])), s)
        ctx.save_for_backward(scale, *factors, *outs)
        ctx.n_factors = len(factors)
        return tuple(outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, *grad_outs: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Gradients from two launches, each recomputing the logits once for all M terms.

        The first gives the row factor's gradient (with ``d e`` and ``d s``), the second
        (roles swapped) the column factor's.
        """
        scale, *rest = ctx.saved_tensors
        factors, lses = rest[: ctx.n_factors], rest[ctx.n_factors :]
        roles = _Roles(factors[0], list(factors[1:]))
        s = scale.detach().to(device=factors[0].device, dtype=torch.float32).reshape(1)
        g = [
            torch.zeros_like(o) if go is None else go.to(torch.float32).contiguous()
            for go, o in zip(grad_outs, lses)
        ]
        mu, alpha = _row_weights(list(lses[:-1]), g[:-1])
        last = (lses[-1].contiguous(), g[-1])
        need_scale, *needs = ctx.needs_input_grad
        k = roles.k
        need_e = k >= 2 and (needs[0] or (k == 3 and needs[1]))
        drows, de, ds = _backward_pass(roles, False, s, mu, alpha, need_e, need_scale, last)
        dcols = None
        if needs[-1]:
            dcols, _, _ = _backward_pass(roles, True, s, mu, alpha, False, False, last)
        out = _input_grads(roles, list(factors), list(needs), drows, de, dcols)
        g_scale = ds.to(scale).reshape(scale.shape) if ds is not None else None
        return (g_scale, *out)


def triton_mip_logsumexp_all(factors: list[Tensor], scale: Tensor) -> list[Tensor]:
    """Fused one-pass normalisers (see :func:`anymodal.kernels.mip_logsumexp_all`), M in 2..4.

    Shapes:
        factors[m]: ``[N_m, D]``; returns M tensors ``[N_m]``, float32.
    """
    if not 2 <= len(factors) <= 4:
        raise ValueError(f"the Triton path handles 2 to 4 factors, got {len(factors)}")
    return list(TritonMIPLogSumExpAll.apply(scale, *factors))
