"""The running top-k shared by tuple search and retrieval, against one ``torch.topk``."""

from __future__ import annotations

import pytest
import torch

from anymodal.kernels import RunningTopK


@pytest.mark.parametrize(("n", "block", "k"), [(50, 7, 5), (10, 3, 10), (9, 20, 4), (6, 1, 1)])
def test_blocks_merge_to_the_whole_topk(n: int, block: int, k: int) -> None:
    scores = torch.randn(4, n, generator=torch.Generator().manual_seed(n))
    top = RunningTopK(k)
    for start in range(0, n, block):
        top.push(scores[:, start : start + block], offset=start)
    values, indices = top.result()
    want_v, want_i = scores.topk(k, dim=1)
    torch.testing.assert_close(values, want_v)
    assert torch.equal(indices, want_i)  # no ties in random floats
    assert torch.equal(scores.gather(1, indices), values)


def test_fewer_candidates_than_k_and_per_row_offsets() -> None:
    top = RunningTopK(5)
    top.push(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), offset=torch.tensor([[10], [20]]))
    values, indices = top.result()
    assert values.tolist() == [[3.0, 1.0], [2.0, 0.0]]
    assert indices.tolist() == [[11, 10], [20, 21]]


def test_misuse_is_named() -> None:
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        RunningTopK(0)
    with pytest.raises(ValueError, match="no block was pushed"):
        RunningTopK(3).result()
