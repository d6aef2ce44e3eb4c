"""Choice of implementation: defaults, ``ANYMODAL_KERNEL``, lazy Triton import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from kernels_reference import make_inputs

from anymodal.kernels import kernel_backend, mip_logsumexp, mip_topk


def test_cpu_tensors_default_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYMODAL_KERNEL", raising=False)
    assert kernel_backend(make_inputs([2], 3, dtype=torch.float32)) == "torch"
    monkeypatch.setenv("ANYMODAL_KERNEL", "auto")
    assert kernel_backend(make_inputs([2], 3, dtype=torch.float32)) == "torch"


def test_env_forces_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    x = make_inputs([2], 3, dtype=torch.float32)
    monkeypatch.setenv("ANYMODAL_KERNEL", "triton")
    assert kernel_backend(x) == "triton"
    monkeypatch.setenv("ANYMODAL_KERNEL", " Torch ")
    assert kernel_backend(x) == "torch"


def test_bad_env_value_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_KERNEL", "cuda")
    a, b = make_inputs([2, 3], 3)
    with pytest.raises(ValueError, match="ANYMODAL_KERNEL='cuda'"):
        mip_logsumexp(a, [b], 1.0)


def test_forced_triton_rejects_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_KERNEL", "triton")
    a, b = make_inputs([2, 3], 3)
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        mip_logsumexp(a, [b], 1.0)
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        mip_topk(a, [b], 1)


_CHILD = textwrap.dedent(
    """
    import os, sys, torch
    import anymodal.kernels as K
    assert "triton" not in sys.modules, "importing anymodal.kernels imported triton"
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    K.mip_logsumexp(a, [b], 1.0)  # default path on CPU: torch, still no triton
    assert "triton" not in sys.modules, "the torch path imported triton"
    os.environ["ANYMODAL_KERNEL"] = "triton"
    try:
        K.mip_logsumexp(a, [b], 1.0)
    except RuntimeError as err:
        assert "TRITON_INTERPRET=1" in str(err), err
        print("OK")
    """
)


def test_triton_is_imported_lazily_and_cpu_without_interpreter_is_explained() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "ANYMODAL_KERNEL")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"
