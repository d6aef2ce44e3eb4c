"""anymodal-video: the ``video`` modality and its encoders for anymodal.

Importing this package is cheap: decord and torchvision are imported inside the functions
that need them, so that ``anymodal plugins`` lists plugins quickly.
"""

from __future__ import annotations

from anymodal_video.config import VideoConfig

__version__ = "0.1.0"

__all__ = ["VideoConfig", "__version__"]
