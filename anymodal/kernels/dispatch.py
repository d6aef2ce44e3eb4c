"""Public entry points of :mod:`anymodal.kernels` and the choice of implementation.

Two implementations compute the same thing:

* ``"triton"`` — fused Triton kernels (:mod:`anymodal.kernels.logsumexp_triton`,
  :mod:`anymodal.kernels.topk_triton`), compiled for CUDA tensors. On CPU tensors they
  run in Triton's interpreter (slow; that is how the test-suite checks them on a machine
  without a GPU).
* ``"torch"`` — chunked PyTorch (:mod:`anymodal.kernels.logsumexp_torch`,
  :mod:`anymodal.kernels.logsumexp_all_torch`, :mod:`anymodal.kernels.topk_torch`), on
  any device and any floating dtype.

By default CUDA tensors in float32/bfloat16/float16 take the Triton path and everything
else the torch path. ``ANYMODAL_KERNEL=triton|torch`` forces one (``auto`` or unset:
default). Triton is imported only when the Triton path runs.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from anymodal.kernels.blocks import DEFAULT_CHUNK_ELEMENTS, compute_dtype
from anymodal.kernels.logsumexp_all_torch import ChunkedMIPLogSumExpAll
from anymodal.kernels.logsumexp_torch import ChunkedMIPLogSumExp
from anymodal.kernels.topk_torch import topk_chunked

ENV_VAR = "ANYMODAL_KERNEL"
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
#: Largest ``k`` the Triton top-k kernel keeps per program (registers); above it the
#: default dispatch uses the torch path.
MAX_TRITON_TOPK = 256


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def kernel_backend(tensors: Sequence[Tensor]) -> str:
    """The implementation that will run for these inputs: ``"triton"`` or ``"torch"``.

    Raises:
        ValueError: ``ANYMODAL_KERNEL`` has an unknown value, or forces Triton for a dtype
            or machine it cannot serve.
    """
    choice = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if choice not in ("auto", "triton", "torch"):
        raise ValueError(f"{ENV_VAR}={choice!r}: expected 'triton', 'torch' or 'auto'")
    if choice == "torch":
        return "torch"
    dtype = tensors[0].dtype
    if choice == "triton":
        if dtype not in TRITON_DTYPES:
            raise ValueError(
                f"{ENV_VAR}=triton: the Triton kernels take float32, bfloat16 or float16, "
                f"not {dtype}"
            )
        if not _triton_installed():
            raise ValueError(f"{ENV_VAR}=triton but the 'triton' package is not installed")
        return "triton"
    on_cuda = all(t.is_cuda for t in tensors)
    return "triton" if on_cuda and dtype in TRITON_DTYPES and _triton_installed() else "torch"


def _forced_triton() -> bool:
    return os.environ.get(ENV_VAR, "").strip().lower() == "triton"


def _check_factors(first: Tensor, rest: Sequence[Tensor], names: tuple[str, str]) -> None:
    """Shapes, dtypes and devices of the inputs: 2-D, one width, one dtype, one device."""
    if not isinstance(rest, (list, tuple)) or len(rest) == 0:
        raise ValueError(f"{names[1]} must be a non-empty list of tensors [N_k, D]")
    for name, t in [(names[0], first)] + [(f"{names[1]}[{k}]", o) for k, o in enumerate(rest)]:
        if not isinstance(t, Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor [rows, D], got {_shape(t)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {t.dtype}")
        if t.shape[1] != first.shape[1]:
            raise ValueError(f"{name} has width {t.shape[1]}, {names[0]} has {first.shape[1]}")
        if t.dtype != first.dtype or t.device != first.device:
            raise ValueError(
                f"{name} is {t.dtype} on {t.device}, {names[0]} is {first.dtype} on "
                f"{first.device}: all inputs must share dtype and device"
            )
    for k, o in enumerate(rest):
        if o.shape[0] == 0:
            raise ValueError(f"{names[1]}[{k}] has no rows: the tuple set would be empty")


def _shape(t: object) -> str:
    return str(tuple(t.shape)) if isinstance(t, Tensor) else type(t).__name__


def _scale_tensor(scale: Tensor | float, like: Tensor) -> Tensor:
    if isinstance(scale, Tensor):
        if scale.numel() != 1:
            raise ValueError(f"scale must hold one number, got shape {tuple(scale.shape)}")
        return scale
    return torch.tensor(float(scale), dtype=compute_dtype(like.dtype), device=like.device)


def mip_logsumexp(
    anchor: Tensor,
    others: Sequence[Tensor],
    scale: Tensor | float,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """Log-sum-exp of scaled multilinear inner products over every tuple of ``others``.

    ``out[i] = log sum_{j1..jK} exp(scale * sum_d anchor[i, d] * prod_k others[k][j_k, d])``
    — the normaliser of Symile's loss over all ``N_1 * ... * N_K`` negatives — computed
    without materialising the ``N x N_1 x ... x N_K`` tensor. Differentiable in
    ``anchor``, every tensor of ``others`` and ``scale`` (when it is a tensor that
    requires grad); the backward recomputes the logits from the saved result.

    Args:
        anchor: anchor rows.
        others: K >= 1 tensors, the other modalities; the cost grows as
            ``N * N_1 * ... * N_K * D`` (K = 2 is a matrix product per anchor row; K = 3
            multiplies one more factor into the rows and streams over the last). The
            Triton kernels take K <= 3; larger K runs on the torch path.
        scale: logit scale (temperature), a float or a one-element tensor.
        chunk_elements: logits per block on the torch path (memory/speed trade-off).

    Returns:
        float32 log-sum-exps (float64 when the inputs are float64); bfloat16/float16
        inputs are multiplied in their dtype and accumulated in float32.

    Shapes:
        anchor: ``[N, D]``; others[k]: ``[N_k, D]``; returns ``[N]``.
    """
    _check_factors(anchor, others, ("anchor", "others"))
    scale_t = _scale_tensor(scale, anchor)
    backend = kernel_backend([anchor, *others])
    if backend == "triton" and len(others) > 3 and not _forced_triton():
        backend = "torch"  # the fused kernels stop at K = 3 (forced: they say so)
    if backend == "triton":
        from anymodal.kernels.logsumexp_triton import triton_mip_logsumexp

        return triton_mip_logsumexp(anchor, list(others), scale_t)
    return ChunkedMIPLogSumExp.apply(scale_t, chunk_elements, anchor, *others)


def _check_masks(masks: Sequence[Tensor | None], factors: Sequence[Tensor]) -> None:
    """One optional boolean mask ``[N_m]`` per factor, on the factors' device."""
    if not isinstance(masks, (list, tuple)) or len(masks) != len(factors):
        raise ValueError(f"masks must be a list of {len(factors)} entries (a tensor or None)")
    for m, (mask, f) in enumerate(zip(masks, factors)):
        if mask is None:
            continue
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != f.shape[:1]:
            raise ValueError(
                f"masks[{m}] must be a bool tensor of shape ({f.shape[0]},) (one entry per "
                f"row of factors[{m}]), got {_shape(mask)} "
                f"{getattr(mask, 'dtype', type(mask).__name__)}"
            )
        if mask.device != f.device:
            raise ValueError(f"masks[{m}] is on {mask.device}, factors[{m}] on {f.device}")


def _lse_all_backend(factors: Sequence[Tensor]) -> str:
    backend = kernel_backend(factors)
    if backend == "triton" and len(factors) > 4:
        if _forced_triton():
            raise ValueError(f"{ENV_VAR}=triton: the Triton kernels take M <= 4 factors")
        backend = "torch"
    return backend


def _scatter_rows(out: Tensor, keep: Tensor | None) -> Tensor:
    """Outputs of the kept rows back in place; removed rows get -inf (an empty sum)."""
    if keep is None:
        return out
    full = out.new_full(keep.shape, -math.inf)
    return full.index_put((keep,), out)


def mip_logsumexp_all(
    factors: Sequence[Tensor],
    scale: Tensor | float,
    *,
    masks: Sequence[Tensor | None] | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> list[Tensor]:
    """Every anchor's Symile normaliser from one traversal of the ``N^M`` tensor.

    With ``T[i_0..i_{M-1}] = scale * sum_d prod_m factors[m][i_m, d]``:
    ``out[m][i] = log sum_{tuples with i_m = i} exp(T)`` — for each modality m as the
    anchor, the log-sum-exp over every tuple of the others; ``out[m]`` equals
    ``mip_logsumexp(factors[m], [the other factors], scale)``, but all M come from one
    pass (forward and backward), a 1/M of the work of M calls. The tensor is never
    materialised. Differentiable in every factor and in ``scale`` (a tensor).

    Args:
        factors: M >= 2 tensors, one per modality (the Triton kernels take M <= 4;
            larger M runs on the torch path).
        scale: logit scale, a float or a one-element tensor.
        masks: optional ``BoolTensor[N_m]`` per factor (None: every row); rows marked
            False are removed from every tuple, and their own outputs are ``-inf`` (a
            log-sum-exp over no tuple) with zero gradient.
        chunk_elements: logits per block on the torch path (memory/speed trade-off).

    Returns:
        M tensors, float32 (float64 for float64 inputs); half-precision inputs are
        multiplied in their dtype and accumulated in float32.

    Shapes:
        factors[m]: ``[N_m, D]``; masks[m]: ``[N_m]``; returns ``[N_m]`` each.

    Raises:
        ValueError: fewer than two factors, mismatched widths/dtypes/devices, an empty
            factor (after masking), or a malformed mask.
    """
    if not isinstance(factors, (list, tuple)) or len(factors) < 2:
        raise ValueError("factors must be a list of at least two tensors [N_m, D]")
    _check_factors(factors[0], factors[1:], ("factors[0]", "factors[1:]"))
    keeps: list[Tensor | None] = [None] * len(factors)
    if masks is not None:
        _check_masks(masks, factors)
        keeps = [None if k is None or bool(k.all()) else k for k in masks]
    kept = [f if k is None else f[k] for f, k in zip(factors, keeps)]
    for m, f in enumerate(kept):
        if f.shape[0] == 0:
            raise ValueError(f"factors[{m}] has no rows (after masking): no tuple is left")
    scale_t = _scale_tensor(scale, factors[0])
    if _lse_all_backend(kept) == "triton":
        from anymodal.kernels.logsumexp_triton import triton_mip_logsumexp_all

        outs = triton_mip_logsumexp_all(kept, scale_t)
    else:
        outs = ChunkedMIPLogSumExpAll.apply(scale_t, chunk_elements, *kept)
    return [_scatter_rows(o, k) for o, k in zip(outs, keeps)]


@torch.no_grad()
def mip_topk(
    query: Tensor,
    factors: Sequence[Tensor],
    k: int,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """The ``k`` highest-scoring tuples ``(j1..jK)`` for each query, by multilinear product.

    ``score(q, j1..jK) = sum_d query[q, d] * prod_k factors[k][j_k, d]``, streamed block
    by block with a running top-k: the ``A_1 x ... x A_K`` table of a query is never
    held whole. Not differentiable (retrieval). Among exactly equal scores, which tuple
    is kept is unspecified.

    Args:
        query: query rows (e.g. text embeddings).
        factors: K >= 1 candidate sets (e.g. audio and video corpora).
        k: tuples per query, ``1 <= k <= A_1 * ... * A_K``.
        chunk_elements: scores per block on the torch path.

    Returns:
        ``(values, indices)``: scores best first (float32, float64 for float64 inputs)
        and, for each, the index into every factor.

    Shapes:
        query: ``[Q, D]``; factors[k]: ``[A_k, D]``; values ``[Q, k]``; indices
        ``[Q, k, K]`` (int64).
    """
    _check_factors(query, factors, ("query", "factors"))
    total = math.prod(f.shape[0] for f in factors)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= total:
        raise ValueError(f"k must be an int in [1, {total}] (the number of tuples), got {k!r}")
    backend = kernel_backend([query, *factors])
    forced = _forced_triton()
    if backend == "triton" and k > MAX_TRITON_TOPK:
        if forced:
            raise ValueError(f"{ENV_VAR}=triton: the Triton top-k keeps k <= {MAX_TRITON_TOPK}")
        backend = "torch"
    if backend == "triton" and len(factors) > 3 and not forced:
        backend = "torch"
    # K = 1 is a plain matrix product: cuBLAS + torch.topk beat the tuple kernel, whose
    # tiles would hold a single prefix row; it runs only when forced.
    if backend == "triton" and (len(factors) > 1 or forced):
        from anymodal.kernels.topk_triton import triton_mip_topk

        return triton_mip_topk(query, list(factors), k)
    return topk_chunked(query, factors, k, chunk_elements)
