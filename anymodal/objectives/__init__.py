"""N-modality contrastive objectives, one module each.

Every objective is an ``nn.Module`` called as
``obj(embeddings: {m: Tensor[N, D]}, logit_scale, present=None) -> dict`` whose ``"loss"``
is the scalar to minimise, with named parts and row counts beside it, and which ranks
retrieval candidates with ``obj.score(query, candidates, logit_scale, missing=None) ->
Tensor[Q, C]``. The built-in ones subclass :class:`Objective`, which owns ``forward``
(full precision, the gather across processes, the output dict): each writes only its
``terms`` and its ``score`` and declares its ``query_rule`` (read by retrieval) and
``subset_training_default`` (read by training). They are registered by the built-in plugin
:mod:`anymodal.builtin.objectives` through :func:`builtin_objective_specs`, like any
third-party objective.
"""

from __future__ import annotations

from anymodal.objectives.base import Objective
from anymodal.objectives.clip import ClipConfig, ClipLoss
from anymodal.objectives.dcl import DCLConfig, DCLLoss
from anymodal.objectives.gram import GramConfig, GramLoss
from anymodal.objectives.infoloob import InfoLOOBConfig, InfoLOOBLoss
from anymodal.objectives.multiview import MultiViewConfig, MVDHELLoss, MVInfoNCELoss
from anymodal.objectives.siglip import SigLipConfig, SigLipLoss
from anymodal.objectives.symile import SymileConfig, SymileLoss
from anymodal.types import ObjectiveSpec

__all__ = [
    "ClipConfig",
    "ClipLoss",
    "DCLConfig",
    "DCLLoss",
    "GramConfig",
    "GramLoss",
    "InfoLOOBConfig",
    "InfoLOOBLoss",
    "MVDHELLoss",
    "MVInfoNCELoss",
    "MultiViewConfig",
    "Objective",
    "SigLipConfig",
    "SigLipLoss",
    "SymileConfig",
    "SymileLoss",
    "builtin_objective_specs",
]


def builtin_objective_specs() -> list[ObjectiveSpec]:
    """The specs of every built-in objective, in registration order."""
    from anymodal.objectives import clip, dcl, gram, infoloob, multiview, siglip, symile

    return [
        clip.SPEC,
        siglip.SPEC,
        symile.SPEC,
        gram.SPEC,
        multiview.SPEC_INFONCE,
        multiview.SPEC_DHEL,
        infoloob.SPEC,
        dcl.SPEC,
    ]
