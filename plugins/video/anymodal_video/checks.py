"""Doctor checks for the video plugin: decord and torchvision's compiled operators."""

from __future__ import annotations

from typing import Any

from anymodal import DoctorCheck, hookimpl


def _decord() -> str:
    import decord

    decord.cpu(0)
    return str(decord.__version__)


def _torchvision() -> str:
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    kept = torchvision.ops.nms(boxes, torch.tensor([1.0, 0.5]), 0.5)  # compiled operator
    if kept.tolist() != [0]:
        raise RuntimeError(f"non-maximum suppression kept {kept.tolist()}, expected [0]")
    return f"{torchvision.__version__} (compiled operators load)"


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register this plugin's ``anymodal doctor`` checks."""
    register(DoctorCheck("video: decord", _decord,
                         "make install; elsewhere: pip install decord", ("decord",)))
    register(DoctorCheck("video: torchvision", _torchvision,
                         "make install; elsewhere: pip install torchvision matching torch",
                         ("torchvision", "torch")))
