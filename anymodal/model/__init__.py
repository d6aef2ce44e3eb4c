"""The model: :class:`MultiModalModel`, its folder format and the one embedding path.

- :mod:`anymodal.model.core`: the model, owning ``save_pretrained``/``from_pretrained``;
- :mod:`anymodal.model.io`: the folder format (files only, never imports the model);
- :mod:`anymodal.model.embed`: embedding raw items with a trained model;
- :mod:`anymodal.model.provenance`: which plugin provided each part.
"""

from __future__ import annotations

from anymodal.model.core import (
    MultiModalModel,
    ProjectionHead,
    build_model,
    load_model,
    save_model,
)
from anymodal.model.embed import embed_items, prepare_item
from anymodal.model.io import fingerprint, read_manifest

__all__ = [
    "MultiModalModel",
    "ProjectionHead",
    "build_model",
    "embed_items",
    "fingerprint",
    "load_model",
    "prepare_item",
    "read_manifest",
    "save_model",
]
