"""Doctor checks for the data set builders: the system tools and libraries they call."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from anymodal import DoctorCheck, hookimpl


def _tool(name: str, version_flag: str) -> Callable[[], str]:
    def check() -> str:
        path = shutil.which(name)
        if path is None:
            raise FileNotFoundError(f"{name} is not on PATH")
        done = subprocess.run([path, version_flag], capture_output=True, text=True, timeout=30)
        first = (done.stdout or done.stderr).strip().splitlines()
        if done.returncode != 0:
            raise RuntimeError(f"{name} {version_flag} exited {done.returncode}")
        return first[0][:60] if first else path

    return check


def _sklearn_digits() -> str:
    import sklearn
    from sklearn.datasets import load_digits

    digits = load_digits()
    return f"{sklearn.__version__} ({len(digits.images)} digits ship with it)"


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register this plugin's ``anymodal doctor`` checks."""
    register(DoctorCheck("datasets: ffmpeg", _tool("ffmpeg", "-version"),
                         "apt-get install -y ffmpeg (make install does it when root)"))
    register(DoctorCheck("datasets: espeak-ng", _tool("espeak-ng", "--version"),
                         "apt-get install -y espeak-ng (make install does it when root)"))
    register(DoctorCheck("datasets: scikit-learn digits", _sklearn_digits,
                         "make install; elsewhere: pip install scikit-learn", ("scikit-learn",)))
