"""Collapse watch: a modality whose embeddings fall onto one point, a loss stuck at chance.

Two symptoms that a contrastive run is not learning, both silent otherwise:

* **spread**: the mean pairwise cosine of a modality's validation embeddings (distinct rows
  that have it). Near 1, every item of that modality maps to nearly one vector (measured on
  GRAM three-modality runs: 1.000 for audio) and any query involving it ranks at chance.
* **loss at ln(batch)**: a contrastive cross-entropy over N candidates starts at ln N and
  stays there when nothing is learned (seen: 300 steps of a GRAM run at lr 2e-3).

Each symptom is logged once per modality (or once for the loss), naming the step.
"""

from __future__ import annotations

import logging
import math
from collections import deque

import torch

__all__ = ["COLLAPSE_COSINE", "LossWatch", "collapsed_modalities", "mean_pairwise_cosine"]

logger = logging.getLogger("anymodal.training")

# A fresh MLP tower already gives a mean pairwise cosine of ~0.95 (its outputs share a
# common direction: measured 0.953 and 0.933 on the vector test views), and the GRAM audio
# collapse of issue 15 read 1.000; 0.995 (spread 1 - cos of 0.005) separates the two.
COLLAPSE_COSINE = 0.995


def mean_pairwise_cosine(x: torch.Tensor, max_rows: int = 2048) -> float:
    """The mean cosine similarity between distinct rows of ``x`` (1: one direction).

    Args:
        x: embeddings.
        max_rows: at most this many rows are used (the first ones).

    Shapes:
        x ``[N, D]`` with N >= 2.
    """
    x = torch.nn.functional.normalize(x[:max_rows].double(), dim=-1)
    n = x.shape[0]
    total = x.sum(0)
    # sum_{i != j} <x_i, x_j> = |sum_i x_i|^2 - sum_i |x_i|^2, with |x_i| = 1.
    return float((total @ total - n) / (n * (n - 1)))


def collapsed_modalities(embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor],
                         threshold: float = COLLAPSE_COSINE) -> dict[str, float]:
    """Modalities whose present rows' mean pairwise cosine is at least ``threshold``.

    Args:
        embeddings: modality -> ``[N, D]`` validation embeddings.
        present: modality -> ``BoolTensor[N]`` (the other rows hold the missing embedding).
        threshold: the mean cosine at or above which a modality counts as collapsed.

    Returns:
        modality -> its mean pairwise cosine, for the collapsed ones.
    """
    found = {}
    for key, x in embeddings.items():
        rows = x[present[key]] if key in present else x
        if rows.shape[0] >= 2:
            cosine = mean_pairwise_cosine(rows)
            if cosine >= threshold:
                found[key] = cosine
    return found


class LossWatch:
    """Notices a training loss stuck at ln(batch) for ``window`` consecutive steps.

    Args:
        batch: the global batch (candidates per query of a contrastive cross-entropy).
        window: consecutive steps at chance before it warns.
        tolerance: relative distance to ln(batch) counted as "at chance".
    """

    def __init__(self, batch: int, window: int = 50, tolerance: float = 0.02) -> None:
        self.chance = math.log(max(batch, 2))
        self.tolerance = tolerance
        self.recent: deque[float] = deque(maxlen=window)
        self.warned = False

    def update(self, step: int, loss: float) -> bool:
        """Record a step's loss; log (once) and return True when stuck at ln(batch)."""
        self.recent.append(loss)
        stuck = (len(self.recent) == self.recent.maxlen and
                 all(abs(v - self.chance) <= self.tolerance * self.chance for v in self.recent))
        if stuck and not self.warned:
            self.warned = True
            logger.warning(
                "the training loss has stayed at ln(batch) = %.3f (chance) for %d steps, up "
                "to step %d: the model is not learning. Try a lower optim.lr, a different "
                "model.logit_scale_init, or check that the modalities share information.",
                self.chance, len(self.recent), step)
        return stuck
