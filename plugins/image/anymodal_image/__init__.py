"""anymodal-image: the ``image`` modality and its encoders for anymodal.

Importing this package is cheap: Pillow, torchvision and timm are imported when an image
is first loaded, transformed or encoded.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
