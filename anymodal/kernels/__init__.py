"""Higher-order similarity kernels: Symile's ``N^M`` normaliser and top-k over tuples.

* :func:`mip_logsumexp` — for each anchor row, the log-sum-exp of the scaled multilinear
  inner product over every tuple of the other modalities, with a backward pass, without
  ever materialising the ``N^(K+1)`` tensor.
* :func:`mip_logsumexp_all` — every modality's normaliser at once, from one traversal of
  the tensor (forward and backward): what Symile's ``n_squared`` loss needs.
* :func:`mip_topk` — the k best tuples for each query, with a running top-k.

CUDA tensors run fused Triton kernels, everything else a chunked PyTorch path;
``ANYMODAL_KERNEL=triton|torch`` forces one (see :mod:`anymodal.kernels.dispatch`).
Importing this package does not import Triton.
"""

from __future__ import annotations

from anymodal.kernels.dispatch import (
    ENV_VAR,
    kernel_backend,
    mip_logsumexp,
    mip_logsumexp_all,
    mip_topk,
)

__all__ = ["ENV_VAR", "kernel_backend", "mip_logsumexp", "mip_logsumexp_all", "mip_topk"]
