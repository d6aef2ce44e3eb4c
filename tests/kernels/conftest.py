"""Test set-up for the kernels.

* Makes the sibling ``kernels_reference`` (the naive einsum reference) importable; pytest
  runs in importlib mode.
* Switches Triton's interpreter on for this process when that is still possible and no
  GPU is present, so that ``ANYMODAL_KERNEL=triton`` runs the Triton kernels on CPU
  tensors. Triton reads ``TRITON_INTERPRET`` when ``triton.language`` is first imported,
  hence here, before any test module imports it; on a CUDA machine it is left alone so
  that the ``gpu`` tests compile the kernels for real.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

if "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: the chunked path runs many mid-sized ops, and on a shared
    2-core machine every OpenMP parallel region waits for a descheduled thread (measured:
    a test 40x slower with 2 threads under load than with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
