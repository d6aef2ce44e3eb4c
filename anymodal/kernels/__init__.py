"""Higher-order similarity kernels: Symile's ``N^M`` normalisers and top-k over tuples.

* :func:`mip_logsumexp` — for each anchor row, the log-sum-exp of the scaled multilinear
  inner product over every tuple of the other modalities, with a backward pass, without
  ever materialising the ``N^(K+1)`` tensor.
* :func:`mip_logsumexp_all` — every modality's normaliser at once, from one traversal of
  the tensor (forward and backward): what Symile's ``n_squared`` loss needs.
* :func:`mip_topk` — the k best tuples for each query, with a running top-k
  (:class:`RunningTopK`, which retrieval's exact search streams through too).

Modules, by operation and backend (``dispatch`` chooses; CUDA tensors run fused Triton
kernels, everything else the chunked PyTorch path; ``ANYMODAL_KERNEL=triton|torch``
forces one):

=====================  ==========================  ========================
operation              torch (any device)          Triton (CUDA)
=====================  ==========================  ========================
one anchor's lse       ``logsumexp_torch``         ``logsumexp_triton``
every anchor's lse     ``logsumexp_all_torch``     ``logsumexp_triton``
tuple top-k            ``topk_torch``              ``topk_triton``
=====================  ==========================  ========================

Shared pieces: ``blocks`` (the boxes of prefix rows the torch paths walk),
``running_topk``, ``triton_common`` (modes, tiles) and ``triton_kernels`` (the kernel
sources). Importing this package does not import Triton.
"""

from __future__ import annotations

from anymodal.kernels.blocks import DEFAULT_CHUNK_ELEMENTS
from anymodal.kernels.dispatch import (
    ENV_VAR,
    kernel_backend,
    mip_logsumexp,
    mip_logsumexp_all,
    mip_topk,
)
from anymodal.kernels.running_topk import RunningTopK

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "ENV_VAR",
    "RunningTopK",
    "kernel_backend",
    "mip_logsumexp",
    "mip_logsumexp_all",
    "mip_topk",
]
