"""The ``digits`` data set: scikit-learn's 1,797 handwritten digits in six modalities.

Only the options are imported here; the builder (numpy, scikit-learn, Pillow, open3d,
torch_geometric, espeak-ng, ffmpeg) loads when a build runs.
"""

from __future__ import annotations

from .config import MODALITIES, DigitsConfig

__all__ = ["MODALITIES", "DigitsConfig"]
