"""anymodal-text: the ``text`` modality and its encoders for anymodal.

Importing this package is cheap: ``transformers`` is imported only when ``text_minilm``
is built.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
