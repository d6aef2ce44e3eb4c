"""``anymodal doctor``: what this machine has, what is missing, and how to install it."""

from __future__ import annotations

import importlib
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Check", "run_checks"]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _module(name: str, fix: str, version_attr: str = "__version__",
            extra: Callable[[object], str] | None = None) -> Check:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # an optional library may fail in many ways (e.g. a missing .so)
        return Check(name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}", fix)
    detail = str(getattr(module, version_attr, "installed"))
    if extra is not None:
        detail += extra(module)
    return Check(name, True, detail)


def _binary(name: str, fix: str) -> Check:
    path = shutil.which(name)
    return Check(name, path is not None, path or "not on PATH", "" if path else fix)


def _torch_extra(torch: object) -> str:
    cuda = torch.cuda
    if cuda.is_available():
        return f" (CUDA {torch.version.cuda}, {cuda.device_count()} GPU: {cuda.get_device_name(0)})"  # type: ignore[attr-defined]
    return " (no CUDA device: training runs on the CPU)"


def run_checks() -> list[Check]:
    """Every check, in the order printed."""
    pip = f"{sys.executable} -m pip install"
    apt = "apt-get install -y"
    checks = [
        Check("python", sys.version_info >= (3, 10), platform.python_version(),
              "" if sys.version_info >= (3, 10) else "anymodal needs Python >= 3.10"),
        _module("torch", f"{pip} 'torch==2.11.*'", extra=_torch_extra),
        _module("torchaudio", f"{pip} 'torchaudio==2.11.*' (must match torch exactly)"),
        _module("torchvision", f"{pip} 'torchvision==0.26.*'"),
        _module("triton", f"{pip} triton (comes with the CUDA build of torch)"),
        _module("accelerate", f"{pip} accelerate"),
        _module("soundfile", f"{pip} soundfile"),
        _module("decord", f"{pip} decord"),
        _module("open3d", f"{apt} libusb-1.0-0 && {pip} open3d"),
        _module("torch_geometric", f"{pip} 'torch-geometric==2.8.*'"),
        _module("faiss", f"{pip} faiss-cpu"),
        _module("webdataset", f"{pip} webdataset"),
        _module("transformers", f"{pip} 'anymodal-text[minilm]'"),
        _module("matplotlib", f"{pip} matplotlib"),
        _binary("ffmpeg", f"{apt} ffmpeg"),
        _binary("espeak-ng", f"{apt} espeak-ng"),
    ]
    return checks
