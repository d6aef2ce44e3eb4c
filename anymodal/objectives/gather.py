"""Collectives for objectives: an all-gather that carries gradient, and small helpers.

Negatives must come from every process, and the gradient of a loss with respect to a
gathered row must flow back to the process that owns it, so the embeddings are gathered
with ``torch.distributed.nn.functional.all_gather`` (its backward sums the gradients of
every process onto the owner's rows). ``accelerator.gather`` carries no gradient and must
not be used for negatives. In one process (``torch.distributed`` not initialised, or a
world of one) every function here is the identity and makes no call to the backend.

Every process must call these functions in the same order with tensors of the same
dtype and trailing shape; the first dimension may differ between processes (the last
batch of an epoch is often shorter), which costs one extra tiny collective.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_no_grad",
    "all_gather_with_grad",
    "all_reduce_mean",
    "gathered_sizes",
    "rank",
    "world_size",
]


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The number of processes, 1 when ``torch.distributed`` is not initialised."""
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    """This process's rank, 0 when ``torch.distributed`` is not initialised."""
    return dist.get_rank() if _active() else 0


def gathered_sizes(n: int, device: torch.device) -> list[int]:
    """The first-dimension size held by every process, in rank order.

    Args:
        n: this process's size.
        device: where the backend wants its tensors (CUDA for NCCL).
    """
    if not _active():
        return [n]
    local = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    if x.shape[0] == rows:
        return x
    pad = x.new_zeros((rows - x.shape[0], *x.shape[1:]))
    return torch.cat([x, pad], dim=0)


def all_gather_with_grad(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate every process's ``x`` along dim 0, keeping the autograd graph.

    The backward pass returns to each process the sum, over all processes, of the
    gradients with respect to its own rows: exactly what DDP needs when every process
    computes a loss over the gathered batch.

    Args:
        x: this process's rows.
        sizes: every process's row count, if known (see :func:`gathered_sizes`).

    Shapes:
        x: ``[n_r, *]`` on process ``r``; returns ``[sum_r n_r, *]`` (rank order).
    """
    if not _active():
        return x
    from torch.distributed.nn.functional import all_gather

    sizes = sizes or gathered_sizes(x.shape[0], x.device)
    largest = max(sizes)
    # The differentiable all_gather needs equal shapes: pad, gather, then cut the padding.
    parts = all_gather(_pad_rows(x.contiguous(), largest))
    return torch.cat([part[:size] for part, size in zip(parts, sizes)], dim=0)


def all_gather_no_grad(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate every process's ``x`` along dim 0, without gradient.

    Boolean tensors are sent as ``uint8`` (not every backend takes ``bool``).

    Shapes:
        x: ``[n_r, *]`` on process ``r``; returns ``[sum_r n_r, *]``.
    """
    if not _active():
        return x
    sizes = sizes or gathered_sizes(x.shape[0], x.device)
    largest = max(sizes)
    wire = x.detach().to(torch.uint8) if x.dtype == torch.bool else x.detach()
    padded = _pad_rows(wire.contiguous(), largest)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    out = torch.cat([part[:size] for part, size in zip(parts, sizes)], dim=0)
    return out.to(torch.bool) if x.dtype == torch.bool else out


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over processes, without gradient (``x`` itself in one process)."""
    if not _active():
        return x.detach()
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()
