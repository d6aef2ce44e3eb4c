"""Building Triton kernels for the mode at hand, and launch heuristics.

Triton decides at ``@triton.jit`` time whether a kernel is compiled or interpreted: with
``TRITON_INTERPRET=1`` (``triton.knobs.runtime.interpret``) it returns an
``InterpretedFunction`` that runs on CPU tensors with NumPy. Triton's own library
(``tl.sum``, ``tl.max``, ``tl.zeros``...) is decorated the same way when
``triton.language`` is first imported, so the interpreter works only if the variable was
set *before* ``import triton``; setting it later leaves compiled library functions that
an interpreted kernel cannot call. Kernels here are plain functions decorated on first
use (after that import), and :func:`check_mode` turns the two impossible cases (CPU
tensors without the interpreter; the interpreter switched on after ``import triton``)
into a clear error instead of Triton's internal one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

_BUILT: dict[tuple[Callable[..., Any], bool], Any] = {}


def interpreter_ready() -> bool:
    """True when Triton's interpreter is on, including for its own library functions."""
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    return bool(triton.knobs.runtime.interpret) and isinstance(tl.zeros, InterpretedFunction)


def check_mode(t: Tensor) -> bool:
    """Whether kernels for ``t`` run interpreted; raise when neither mode can serve it.

    Raises:
        RuntimeError: ``t`` is on the CPU and the interpreter is off, or the interpreter
            was switched on after ``triton`` had been imported.
    """
    import triton

    interpret = bool(triton.knobs.runtime.interpret)
    if interpret and not interpreter_ready():
        raise RuntimeError(
            "TRITON_INTERPRET=1 was set after 'triton' had been imported; Triton reads it "
            "at import time. Set it in the environment before starting Python."
        )
    if not t.is_cuda and not interpret:
        raise RuntimeError(
            "the Triton kernels got CPU tensors: they run on CUDA tensors, or on the CPU "
            "in Triton's interpreter (TRITON_INTERPRET=1 in the environment before Python "
            "starts); unset ANYMODAL_KERNEL=triton to use the chunked torch path instead"
        )
    return interpret


def build(fn: Callable[..., Any], interpret: bool) -> Any:
    """``triton.jit(fn)``, cached per mode: launch as ``kernel[grid](...)``."""
    key = (fn, interpret)
    if key not in _BUILT:
        import triton

        _BUILT[key] = triton.jit(fn)
    return _BUILT[key]


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (and >= 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())


def dot_block(n: int, cap: int) -> int:
    """Block size along a ``tl.dot`` dimension: a power of two in [16, cap]."""
    return max(16, min(cap, next_pow2(n)))


def dot_precision(dtype: torch.dtype) -> str:
    """``input_precision`` of ``tl.dot``: float32 follows PyTorch's TF32 switch.

    ``torch.backends.cuda.matmul.allow_tf32`` (off by default) decides whether float32
    matrix products may round their inputs to TF32, as it does for ``torch.matmul``;
    half-precision inputs use the tensor cores either way.
    """
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def dot_dtype(dtype: torch.dtype, interpret: bool) -> Any:
    """The ``tl.dot`` operand dtype: the input's, except bfloat16 under the interpreter.

    Triton 3.6's interpreter multiplies bfloat16 operands as their uint16 storage, so
    there they are widened to float32 (after rounding to bfloat16, as on the GPU).
    """
    import triton.language as tl

    if interpret and dtype == torch.bfloat16:
        return tl.float32
    return {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}[
        dtype
    ]


def sm_count(t: Tensor) -> int:
    """Streaming multiprocessors of ``t``'s GPU (1 on the CPU / interpreter)."""
    if not t.is_cuda:
        return 1
    return torch.cuda.get_device_properties(t.device).multi_processor_count
