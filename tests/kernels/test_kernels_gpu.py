"""The Triton kernels compiled for a CUDA device (``make test-gpu`` runs ``pytest -m gpu``).

Skipped without CUDA, and when Triton's interpreter is on (then nothing is compiled).
"""

from __future__ import annotations

import os

import pytest
import torch
from kernels_reference import TOL, check_logsumexp, check_logsumexp_all, check_topk, make_inputs

from anymodal.kernels import kernel_backend, mip_logsumexp, mip_logsumexp_all, mip_topk

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") == "1", reason="Triton's interpreter is on"
    ),
]


@pytest.fixture(autouse=True)
def _default_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYMODAL_KERNEL", raising=False)


def test_cuda_tensors_take_the_triton_path() -> None:
    x = make_inputs([4], 8, dtype=torch.bfloat16, device="cuda")
    assert kernel_backend(x) == "triton"
    assert kernel_backend([x[0].double()]) == "torch"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("sizes", "dim"),
    [
        ([257, 130], 256),  # K = 1
        ([1, 3, 2], 64),  # N = 1
        ([130, 131, 129], 256),  # K = 2, odd sizes, one width tile for half precision
        ([67, 65, 66], 1000),  # width in several tiles, D not a multiple of the tile
        ([17, 9, 18, 19], 128),  # K = 3
    ],
)
def test_against_reference(sizes: list[int], dim: int, dtype: torch.dtype) -> None:
    tol = {torch.float32: 1e-4, torch.bfloat16: TOL[torch.bfloat16], torch.float16: 2e-2}[dtype]
    check_logsumexp(sizes, dim, dtype, seed=dim, device="cuda", tol=tol)


def test_tf32_follows_torch_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    check_logsumexp([64, 65, 66], 256, torch.float32, seed=1, device="cuda", tol=2e-2)


def test_matches_torch_path_at_size(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = make_inputs([512, 512, 512], 256, torch.float32, normalize=True, device="cuda")
    fused = mip_logsumexp(a, [b, c], 20.0)
    monkeypatch.setenv("ANYMODAL_KERNEL", "torch")
    torch.testing.assert_close(fused, mip_logsumexp(a, [b, c], 20.0), rtol=1e-4, atol=1e-4)


def _extra_cuda_memory(loss_of) -> int:
    """Peak CUDA bytes above the inputs of ``loss_of(factors).backward()`` at N = 2048, d = 256.

    The naive float32 N x N x N tensor would take 32 GiB.
    """
    tensors = [
        t.requires_grad_()
        for t in make_inputs([2048] * 3, 256, torch.bfloat16, normalize=True, device="cuda")
    ]
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    loss_of(tensors).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def test_memory_stays_far_below_the_cube() -> None:
    extra = _extra_cuda_memory(lambda t: mip_logsumexp(t[0], t[1:], 10.0).sum())
    assert extra < 64 * 2**20, f"{extra / 2**20:.1f} MiB"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("sizes", "k"), [([300, 257], 10), ([20, 30, 41], 100), ([5000], 7)])
def test_topk(
    sizes: list[int], k: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    if len(sizes) == 1:  # K = 1 takes the kernel only when forced
        monkeypatch.setenv("ANYMODAL_KERNEL", "triton")
    query, *factors = make_inputs([9, *sizes], 96, dtype, normalize=True, device="cuda")
    tol = 1e-4 if dtype == torch.float32 else TOL[dtype]
    check_topk(query, factors, k, *mip_topk(query, factors, k), tol=tol)


def test_topk_ties() -> None:
    query, a, b = make_inputs([4, 1, 70], 32, torch.float32, device="cuda")
    a = a.repeat(5, 1)
    check_topk(query, [a, b], 12, *mip_topk(query, [a, b], 12), tol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(
    ("sizes", "dim"),
    [([257, 130], 256), ([130, 131, 129], 256), ([67, 65, 66], 1000), ([17, 9, 18, 19], 128)],
)
def test_all_anchors_against_reference(
    sizes: list[int], dim: int, dtype: torch.dtype, masked: bool
) -> None:
    tol = 1e-4 if dtype == torch.float32 else TOL[dtype]
    check_logsumexp_all(sizes, dim, dtype, seed=dim, masked=masked, tol=tol, device="cuda")


def test_all_anchors_match_torch_path_at_size(monkeypatch: pytest.MonkeyPatch) -> None:
    factors = make_inputs([384, 384, 384], 256, torch.float32, normalize=True, device="cuda")
    fused = mip_logsumexp_all(factors, 20.0)
    monkeypatch.setenv("ANYMODAL_KERNEL", "torch")
    for got, want in zip(fused, mip_logsumexp_all(factors, 20.0)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_all_anchors_memory_stays_far_below_the_cube() -> None:
    extra = _extra_cuda_memory(lambda t: sum(o.sum() for o in mip_logsumexp_all(t, 10.0)))
    # The (anchor, row) log-sum-exps and the backward's mu/alpha: N^2 float32 each.
    assert extra < 3 * 2048 * 2048 * 4 + 64 * 2**20, f"{extra / 2**20:.1f} MiB"
