"""Doctor checks for the image plugin: Pillow's PNG codec and the optional timm."""

from __future__ import annotations

import io
from typing import Any

from anymodal import DoctorCheck, hookimpl


def _pillow() -> str:
    import PIL
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (255, 0, 0)).save(buffer, format="PNG")
    buffer.seek(0)
    with Image.open(buffer) as image:
        if image.size != (4, 3):
            raise RuntimeError(f"a 4x3 PNG decoded as {image.size}")
    return f"{PIL.__version__} (PNG round trip)"


def _timm() -> str:
    import timm

    return str(timm.__version__)


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register this plugin's ``anymodal doctor`` checks."""
    register(DoctorCheck("image: Pillow", _pillow, "make install; elsewhere: pip install Pillow",
                         ("pillow",)))
    register(DoctorCheck("image: timm (image_timm)", _timm, "pip install 'anymodal-image[timm]'",
                         ("timm",), required=False))
