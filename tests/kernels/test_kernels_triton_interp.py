"""The Triton kernels, run by Triton's interpreter on CPU tensors, against the reference.

``conftest.py`` switches the interpreter on before Triton is imported; where that was
impossible (a GPU machine, or Triton imported earlier) these tests are skipped and the
``gpu`` tests cover the kernels compiled. The interpreter costs about a millisecond per
operation, so the shapes are small; tiles are shrunk in some tests to reach the
multi-tile paths (several row, column and width tiles).
"""

from __future__ import annotations

import pytest
import torch
from kernels_reference import (
    TOL,
    check_logsumexp,
    check_logsumexp_all,
    check_topk,
    make_inputs,
    naive_logsumexp,
)

from anymodal.kernels import mip_logsumexp, mip_logsumexp_all, mip_topk

triton = pytest.importorskip("triton")

from anymodal.kernels import logsumexp_triton as triton_mip  # noqa: E402
from anymodal.kernels import topk_triton as triton_topk  # noqa: E402
from anymodal.kernels.triton_common import interpreter_ready  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        not interpreter_ready(),
        reason="Triton's interpreter is off (TRITON_INTERPRET=1 must be set before triton "
        "is imported); the compiled kernels are tested by the gpu tests",
    ),
    # NumPy 2.3 deprecates a scalar conversion the interpreter does on every operation.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:triton.runtime.interpreter"),
]

SMALL_TILES = {"BLOCK_R": 16, "BLOCK_C": 16, "BLOCK_D": 16, "BLOCK_DO": 16}
SMALL_TOPK_TILES = {"BLOCK_P": 16, "BLOCK_C": 16, "BLOCK_D": 16}


@pytest.fixture(autouse=True)
def _triton_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_KERNEL", "triton")


@pytest.mark.parametrize(
    ("sizes", "dim"),
    [
        ([33, 31], 64),  # K = 1: one row/column tile each, width in one tile
        ([7, 9, 11], 5),  # K = 2, odd sizes, width far below the tile
        ([33, 7, 6], 16),  # K = 2, N = 33
        ([1, 2, 3], 3),  # N = 1
        ([4, 5, 3, 6], 8),  # K = 3: (anchor, others_1) pairs as effective anchors
    ],
)
def test_forward_backward_float32(sizes: list[int], dim: int) -> None:
    check_logsumexp(sizes, dim, torch.float32, seed=sum(sizes))


@pytest.mark.parametrize(
    ("sizes", "dim"),
    [
        ([33, 17], 40),  # K = 1: 3 row tiles, 2 column tiles, 3 width tiles
        ([9, 18, 17], 20),  # K = 2: 2 row and column tiles, 2 width tiles
        ([3, 2, 17, 5], 20),  # K = 3
    ],
)
def test_multi_tile_paths(monkeypatch: pytest.MonkeyPatch, sizes: list[int], dim: int) -> None:
    monkeypatch.setattr(triton_mip, "INTERPRETER_TILES", SMALL_TILES)
    check_logsumexp(sizes, dim, torch.float32, seed=dim)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("sizes", [[7, 8, 9], [3, 4, 2, 5]])
def test_half_precision_inputs(dtype: torch.dtype, sizes: list[int]) -> None:
    check_logsumexp(sizes, 16, dtype, seed=len(sizes))


@pytest.mark.parametrize("wanted", [0, 1, 3])
def test_gradient_of_a_single_input(wanted: int) -> None:
    # K = 3: anchor and others[0] get theirs through d e, others[-1] from the swapped pass.
    tensors = make_inputs([3, 4, 2, 5], 8, dtype=torch.float32, seed=wanted)
    tensors[wanted].requires_grad_()
    mip_logsumexp(tensors[0], tensors[1:], 1.5).sum().backward()
    ref = [t.detach().double().requires_grad_(i == wanted) for i, t in enumerate(tensors)]
    naive_logsumexp(ref[0], ref[1:], 1.5).sum().backward()
    for i, t in enumerate(tensors):
        assert (t.grad is not None) == (i == wanted)
    torch.testing.assert_close(
        tensors[wanted].grad.double(), ref[wanted].grad, rtol=1e-4, atol=1e-5
    )


def test_matches_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = make_inputs([6, 7, 8], 12, dtype=torch.float32, seed=11)
    fused = mip_logsumexp(a, [b, c], 2.0)
    monkeypatch.setenv("ANYMODAL_KERNEL", "torch")
    torch.testing.assert_close(fused, mip_logsumexp(a, [b, c], 2.0), rtol=1e-5, atol=1e-5)


def test_more_than_three_others_is_refused() -> None:
    tensors = make_inputs([2, 2, 2, 2, 2], 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="1 to 3"):
        mip_logsumexp(tensors[0], tensors[1:], 1.0)


@pytest.mark.parametrize(
    ("sizes", "k"),
    [([7, 9], 4), ([3, 4, 5], 7), ([50], 5), ([5, 6], 30)],
)
def test_topk(sizes: list[int], k: int) -> None:
    query, *factors = make_inputs([3, *sizes], 6, dtype=torch.float32, seed=k)
    check_topk(query, factors, k, *mip_topk(query, factors, k), tol=TOL[query.dtype])


def test_topk_multi_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_topk, "INTERPRETER_TILES", SMALL_TOPK_TILES)
    query, a, b = make_inputs([2, 40, 19], 20, dtype=torch.float32, seed=4)
    check_topk(query, [a, b], 9, *mip_topk(query, [a, b], 9))


def test_topk_ties_and_half_precision() -> None:
    query, a, b = make_inputs([2, 1, 6], 8, dtype=torch.float16, seed=2)
    a = a.repeat(3, 1)  # every score three times
    check_topk(query, [a, b], 5, *mip_topk(query, [a, b], 5), tol=TOL[query.dtype])
    query, a, b = make_inputs([2, 5, 6], 8, dtype=torch.bfloat16, seed=2, normalize=True)
    check_topk(query, [a, b], 4, *mip_topk(query, [a, b], 4), tol=TOL[query.dtype])


def test_topk_k_above_kernel_limit_is_refused_when_forced() -> None:
    query, a, b = make_inputs([1, 20, 20], 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="k <= 256"):
        mip_topk(query, [a, b], 300)


# ------------------------------------------------------------------ mip_logsumexp_all


@pytest.mark.parametrize(
    ("sizes", "dim"),
    [
        ([9, 7], 5),  # M = 2: no effective anchor, rows and columns are the two factors
        ([4, 7, 6], 12),  # M = 3: the anchor row modulates the rows
        ([3, 2, 5, 4], 8),  # M = 4: (anchor, factor 1) pairs as effective anchors
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_all_anchors_forward_backward(sizes: list[int], dim: int, masked: bool) -> None:
    check_logsumexp_all(sizes, dim, torch.float32, seed=len(sizes), masked=masked)


@pytest.mark.parametrize(("sizes", "dim"), [([17, 18], 20), ([3, 17, 18], 20), ([2, 2, 17, 5], 20)])
def test_all_anchors_multi_tile(
    monkeypatch: pytest.MonkeyPatch, sizes: list[int], dim: int
) -> None:
    # Tiles of 16: two row and column tiles (column scratch merged across tiles and
    # effective anchors), two width tiles (the non-ONE_D loops).
    monkeypatch.setattr(triton_mip, "INTERPRETER_TILES", SMALL_TILES)
    check_logsumexp_all(sizes, dim, torch.float32, seed=dim + len(sizes))


def test_all_anchors_half_precision() -> None:
    check_logsumexp_all([5, 6, 7], 16, torch.bfloat16, seed=5)


def test_all_anchors_match_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    factors = make_inputs([6, 7, 8], 12, dtype=torch.float32, seed=12)
    fused = mip_logsumexp_all(factors, 2.0)
    monkeypatch.setenv("ANYMODAL_KERNEL", "torch")
    for got, want in zip(fused, mip_logsumexp_all(factors, 2.0)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_all_anchors_five_factors_refused_when_forced() -> None:
    factors = make_inputs([2, 2, 2, 2, 2], 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="M <= 4"):
        mip_logsumexp_all(factors, 1.0)
