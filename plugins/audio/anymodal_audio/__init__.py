"""anymodal-audio: the ``audio`` modality and its encoders for anymodal.

Importing this package is cheap: torchaudio, soundfile and decord are imported inside the
functions that need them, so that ``anymodal plugins`` lists plugins quickly.
"""

from __future__ import annotations

from anymodal_audio.config import AudioConfig

__version__ = "0.1.0"

__all__ = ["AudioConfig", "__version__"]
