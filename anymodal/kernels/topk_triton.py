"""Fused Triton path of :func:`anymodal.kernels.mip_topk`.

A program scores one query against a block of prefix tuples (K = 2: rows of
``factors_1``; K = 3: products ``factors_1[j1] * factors_2[j2]``; K = 1: a single row of
ones) and every block of the last factor, with ``tl.dot``, and keeps a running top-``KP``
(``KP`` = ``k`` rounded up to a power of two) in registers: while the tile's best score
beats the running worst, it replaces it. Each program writes ``KP`` candidates; torch
picks the final ``k`` among ``Q x blocks x KP`` of them. Memory: ``Q * ceil(P / BLOCK_P)
* KP`` candidates instead of the ``Q * A_1 * ... * A_K`` table.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from anymodal.kernels.topk_torch import unravel
from anymodal.kernels.triton_common import (
    build,
    check_mode,
    dot_block,
    dot_dtype,
    dot_precision,
    next_pow2,
)
from anymodal.kernels.triton_kernels import mip_topk_tiles

#: Tiles under the interpreter (see :data:`anymodal.kernels.logsumexp_triton.INTERPRETER_TILES`).
INTERPRETER_TILES = {"BLOCK_P": 32, "BLOCK_C": 32, "BLOCK_D": 64}


def _config(dim: int, interpret: bool) -> dict[str, int]:
    if interpret:
        t = INTERPRETER_TILES
        return {"BLOCK_P": t["BLOCK_P"], "BLOCK_C": t["BLOCK_C"],
                "BLOCK_D": dot_block(dim, t["BLOCK_D"]), "num_warps": 4}  # fmt: skip
    return {"BLOCK_P": 64, "BLOCK_C": 64, "BLOCK_D": dot_block(dim, 128), "num_warps": 4}


def triton_mip_topk(query: Tensor, factors: list[Tensor], k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` tuples per query by multilinear product, K in 1..3 (see ``mip_topk``).

    Shapes:
        query: ``[Q, D]``; factors[m]: ``[A_m, D]``; returns values ``[Q, k]`` (float32)
        and indices ``[Q, k, K]`` (int64).
    """
    if not 1 <= len(factors) <= 3:
        raise ValueError(f"the Triton path handles 1 to 3 factors, got {len(factors)}")
    query = query.contiguous()
    factors = [f.contiguous() for f in factors]
    interpret = check_mode(query)
    dim = query.shape[1]
    cols = factors[-1]
    if len(factors) == 1:  # a single prefix: the row of ones
        f1 = torch.ones(1, dim, dtype=query.dtype, device=query.device)
        f2, group = f1, 1
    else:
        f1 = factors[0]
        f2 = factors[1] if len(factors) == 3 else f1
        group = factors[1].shape[0] if len(factors) == 3 else 1
    n_prefix = math.prod(f.shape[0] for f in factors[:-1])
    cfg = _config(dim, interpret)
    n_blocks = -(-n_prefix // cfg["BLOCK_P"])
    kp = next_pow2(max(k, 2))
    n_q = query.shape[0]
    vals = torch.empty(n_q, n_blocks * kp, dtype=torch.float32, device=query.device)
    idx = torch.empty(n_q, n_blocks * kp, dtype=torch.int64, device=query.device)
    kernel = build(mip_topk_tiles, interpret)
    kernel[(n_q, n_blocks)](
        query, f1, f2, cols, vals, idx,
        n_prefix, cols.shape[0], dim, group, n_blocks,
        HAS_F2=len(factors) == 3, ONE_D=dim <= cfg["BLOCK_D"], BLOCK_P=cfg["BLOCK_P"],
        BLOCK_C=cfg["BLOCK_C"], BLOCK_D=cfg["BLOCK_D"], KP=kp,
        PRECISION=dot_precision(query.dtype),
        DOT_DTYPE=dot_dtype(query.dtype, interpret), num_warps=cfg["num_warps"],
    )  # fmt: skip
    best_v, pos = vals.topk(k, dim=1)
    return best_v, unravel(idx.gather(1, pos), [f.shape[0] for f in factors])
