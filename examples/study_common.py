"""What the example studies share: the description of the machine a result was measured on.

``examples/compare_objectives.py`` and ``examples/symile_xor.py`` both name the machine in
their reports; this module is imported by both (the examples are scripts, not a package:
each puts its own folder on ``sys.path``).
"""

from __future__ import annotations

import os
import platform
import subprocess

import torch

__all__ = ["machine"]


def machine() -> str:
    """``N-core CPU (model name), GPU or "no GPU"`` and the torch version, for a report.

    The CPU model comes from ``lscpu`` (``platform.processor()`` where it is missing).
    """
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()}-core CPU ({model}), {gpu}, runs on the CPU with 1 torch "
            f"thread; torch {torch.__version__}")
