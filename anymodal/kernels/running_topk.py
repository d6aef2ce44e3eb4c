"""One running top-k: the ``k`` best scores per query over candidates that come in blocks.

Shared by the tuple search of :func:`anymodal.kernels.mip_topk` (blocks of prefix tuples
against the last factor) and by retrieval's exact search (chunks of a corpus): each block
is reduced to its own top-k and merged, so what is held per query is ``k`` scores and
their candidate numbers, whatever the number of candidates.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["RunningTopK"]


class RunningTopK:
    """The ``k`` best ``(score, candidate number)`` seen so far for each query row.

    Among exactly equal scores, which candidate is kept is unspecified.

    Args:
        k: how many to keep per query (>= 1).

    Example:
        >>> top = RunningTopK(2)
        >>> top.push(torch.tensor([[0.1, 0.9, 0.5]]))
        >>> top.push(torch.tensor([[0.7]]), offset=3)
        >>> top.result()
        (tensor([[0.9000, 0.7000]]), tensor([[1, 3]]))
    """

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        self.k = k
        self.values: Tensor | None = None
        self.indices: Tensor | None = None

    def push(self, scores: Tensor, offset: int | Tensor = 0) -> None:
        """Merge a block: column ``j`` of ``scores`` is candidate ``offset + j``.

        Shapes:
            scores: ``[Q, B]`` (higher is better); ``offset``: an int or ``[Q, 1]``.
        """
        v, i = scores.topk(min(self.k, scores.shape[1]), dim=1)
        i = i + offset
        if self.values is None or self.indices is None:
            self.values, self.indices = v, i
            return
        values = torch.cat([self.values, v], dim=1)
        indices = torch.cat([self.indices, i], dim=1)
        if values.shape[1] > self.k:
            values, pos = values.topk(self.k, dim=1)
            indices = indices.gather(1, pos)
        self.values, self.indices = values, indices

    def result(self) -> tuple[Tensor, Tensor]:
        """``(values, indices)`` best first: at most ``k`` per query (fewer if fewer came).

        Raises:
            ValueError: nothing was pushed.
        """
        if self.values is None or self.indices is None:
            raise ValueError("RunningTopK.result(): no block was pushed")
        # The last merge may have been a bare concatenation: sort best first.
        values, pos = self.values.sort(dim=1, descending=True)
        return values, self.indices.gather(1, pos)
