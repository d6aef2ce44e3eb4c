"""The hook implementations of anymodal-datasets (entry point ``datasets``).

Importing this module stays cheap: a builder's heavy imports happen when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anymodal import DatasetSpec, hookimpl
from anymodal_datasets.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)
from anymodal_datasets.demo import anymodal_register_commands  # noqa: F401  (a hook)
from anymodal_datasets.digits.config import DigitsConfig


def _build_digits(out_dir: Path, config: DigitsConfig) -> Path:
    from anymodal_datasets.digits.build import build_digits

    return build_digits(out_dir, config)


@hookimpl
def anymodal_register_datasets(register: Any) -> None:
    """Register the ``digits`` builder."""
    register(DatasetSpec(
        "digits", _build_digits, DigitsConfig,
        "scikit-learn's 1,797 handwritten digits as image, speech (espeak-ng), video "
        "(ffmpeg), point cloud, graph and caption, with a train/val/test split"))
