"""``mip_topk`` on the torch path against a brute-force table."""

from __future__ import annotations

import pytest
import torch
from kernels_reference import check_topk, make_inputs

from anymodal.kernels import mip_topk


@pytest.fixture(autouse=True)
def _torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_KERNEL", "torch")


@pytest.mark.parametrize(
    ("sizes", "k"),
    [([13], 5), ([7, 9], 4), ([7, 9], 63), ([5, 1, 6], 7), ([4, 3, 5], 60), ([2, 3, 2, 2], 9)],
)
@pytest.mark.parametrize("chunk_elements", [1 << 22, 7])
def test_matches_brute_force(sizes: list[int], k: int, chunk_elements: int) -> None:
    query, *factors = make_inputs([3, *sizes], dim=5, seed=len(sizes) * 10 + k)
    values, indices = mip_topk(query, factors, k, chunk_elements=chunk_elements)
    assert values.dtype == torch.float64
    check_topk(query, factors, k, values, indices)


def test_ties_keep_distinct_tuples_of_equal_score() -> None:
    # factors_1 holds the same row three times: every score appears at least three times.
    query, f1, f2 = make_inputs([2, 1, 6], dim=4, seed=7)
    f1 = f1.repeat(3, 1)
    for chunk_elements in (1 << 22, 6):
        values, indices = mip_topk(query, [f1, f2], 5, chunk_elements=chunk_elements)
        check_topk(query, [f1, f2], 5, values, indices)
        torch.testing.assert_close(values[:, 0], values[:, 2])


def test_low_precision_returns_float32() -> None:
    query, a, b = make_inputs([2, 6, 7], dim=8, dtype=torch.bfloat16, seed=1)
    values, indices = mip_topk(query, [a, b], 3)
    assert values.dtype == torch.float32
    check_topk(query.float(), [a.float(), b.float()], 3, values, indices)


def test_no_gradient_flows() -> None:
    query, a = (t.requires_grad_() for t in make_inputs([2, 6], dim=3))
    values, _ = mip_topk(query, [a], 2)
    assert not values.requires_grad


@pytest.mark.parametrize("k", [0, -1, 43, 2.0, True])
def test_bad_k_is_an_error(k: object) -> None:
    query, a, b = make_inputs([2, 6, 7], dim=3)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 42\]"):
        mip_topk(query, [a, b], k)  # type: ignore[arg-type]


def test_bad_factors_are_errors() -> None:
    query, a = make_inputs([2, 6], dim=3)
    with pytest.raises(ValueError, match="non-empty list"):
        mip_topk(query, [], 1)
    with pytest.raises(ValueError, match="width"):
        mip_topk(query, [a[:, :2]], 1)
