"""The core's doctor checks: torch, Accelerate, and the libraries the kernels and retrieval use.

Each check runs one small computation; see :class:`anymodal.DoctorCheck`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from typing import Any

from anymodal.plugin_host.hookspecs import hookimpl
from anymodal.types import DoctorCheck

SYNC = "make install (re-syncs .venv to requirements/lock.txt)"


def _python() -> str:
    return f"{platform.python_version()} ({sys.executable})"


def _torch() -> str:
    import torch

    product = (torch.ones(4, 4) @ torch.ones(4, 4)).sum().item()
    if product != 64.0:
        raise RuntimeError(f"a 4x4 matrix product summed to {product}, expected 64")
    device = (f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
              if torch.cuda.is_available() else "no CUDA device: training runs on the CPU")
    return f"{torch.__version__} ({device})"


def _accelerate() -> str:
    import accelerate
    from accelerate.utils import send_to_device

    send_to_device({"x": [1]}, "cpu")
    return str(accelerate.__version__)


# Runs in a child process: TRITON_INTERPRET must be set before triton is imported.
_TRITON_PROBE = textwrap.dedent("""
    import torch, triton, triton.language as tl

    @triton.jit
    def add(x, y, out, n: tl.constexpr):
        i = tl.arange(0, n)
        tl.store(out + i, tl.load(x + i) + tl.load(y + i))

    x = torch.arange(16, dtype=torch.float32)
    out = torch.empty_like(x)
    add[(1,)](x, x, out, 16)
    assert torch.equal(out, 2 * x), out
    print(triton.__version__)
""")


def _triton_interpreter() -> str:
    import numpy
    import triton  # noqa: F401  (a missing triton is reported as missing, not broken)

    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", _TRITON_PROBE], env=env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"a kernel under TRITON_INTERPRET=1 failed with numpy "
                           f"{numpy.__version__} (numpy >= 2.4 breaks the interpreter): {last}")
    return f"{done.stdout.strip()} (a kernel ran under TRITON_INTERPRET=1)"


def _faiss() -> str:
    import faiss
    import numpy as np

    index = faiss.IndexFlatIP(4)
    index.add(np.eye(4, dtype="float32"))
    _, found = index.search(np.eye(4, dtype="float32")[:1], 1)
    if int(found[0, 0]) != 0:
        raise RuntimeError(f"exact search returned row {int(found[0, 0])}, expected 0")
    return str(faiss.__version__)


def _matplotlib() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(1, 1))
    figure.canvas.draw()
    plt.close(figure)
    return str(matplotlib.__version__)


def _webdataset() -> str:
    import webdataset

    return str(getattr(webdataset, "__version__", "installed"))


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register the core's ``anymodal doctor`` checks."""
    register(DoctorCheck("python", _python))
    register(DoctorCheck("torch", _torch, SYNC, ("torch",)))
    register(DoctorCheck("accelerate", _accelerate, SYNC, ("accelerate",)))
    register(DoctorCheck("triton interpreter (kernel tests)", _triton_interpreter,
                         f"{SYNC}; triton comes with the CUDA build of torch, numpy must be < 2.4",
                         ("triton", "numpy"), required=False))
    register(DoctorCheck("faiss (retrieval backends)", _faiss, "pip install faiss-cpu",
                         required=False))
    register(DoctorCheck("matplotlib (anymodal report)", _matplotlib, "pip install matplotlib",
                         ("matplotlib",), required=False))
    register(DoctorCheck("webdataset (shard sources)", _webdataset, "pip install webdataset",
                         ("webdataset",), required=False))
