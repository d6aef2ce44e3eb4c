"""Hard corpora for the retrieval benchmark: neighbour structure like real embeddings.

Two families, each returning ``(corpus [N, D], queries [Q, D])`` of unit rows, the queries
held out (never rows of the corpus):

``digits``: scikit-learn's real handwritten digits (1,797 images of 8x8 pixels, shipped in
its wheel), standardised, with Gaussian noise in the 64 pixel features (``feature_noise``
standard deviations: copies of one image spread over its neighbours of the same and other
classes), through one fixed random projection to D dimensions, plus isotropic noise there
(``dim_noise``). Corpus rows come from 1,500 images, queries from the other 297.

``mixture``: a Gaussian mixture with heavy overlap: 1,000 components whose centres and
within-component noise share one anisotropic spectrum (variance of axis j proportional to
``1 / j``, as the decaying spectra of learnt embeddings) and one size (``spread = 1``: a
component is as wide as the cloud of centres), so that a point's nearest neighbours come
from many components. Queries are fresh draws.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["CORPORA", "digits_projection", "overlap_mixture"]

BLOCK = 100_000  # rows drawn at once: bounds the temporaries at 1M rows


def _blocks(m: int, dim: int, draw: object) -> Tensor:
    out = torch.empty(m, dim)
    for start in range(0, m, BLOCK):
        count = min(BLOCK, m - start)
        out[start:start + count] = torch.nn.functional.normalize(draw(count), dim=-1)  # type: ignore[operator]
    return out


def digits_projection(n: int, n_queries: int, dim: int = 256, seed: int = 0,
                      feature_noise: float = 1.0, dim_noise: float = 0.5) -> tuple[Tensor, Tensor]:
    """Noisy copies of real digit images, randomly projected to ``dim`` (see module doc).

    Shapes:
        returns corpus ``[n, dim]`` and queries ``[n_queries, dim]``, unit rows.
    """
    from sklearn.datasets import load_digits

    pixels, _ = load_digits(return_X_y=True)
    features = torch.from_numpy((pixels - pixels.mean(0)) / (pixels.std(0) + 1e-6)).float()
    rng = np.random.default_rng(seed)
    order = torch.from_numpy(rng.permutation(len(features)))
    held, base = order[:297], order[297:]
    projection = torch.from_numpy(
        rng.standard_normal((features.shape[1], dim)) / math.sqrt(features.shape[1])).float()
    g = torch.Generator().manual_seed(seed + 1)

    def draw_from(rows: Tensor) -> object:
        def draw(count: int) -> Tensor:
            pick = rows[torch.randint(len(rows), (count,), generator=g)]
            noisy = features[pick] + feature_noise * torch.randn(
                count, features.shape[1], generator=g)
            return noisy @ projection + dim_noise * torch.randn(count, dim, generator=g)
        return draw

    return _blocks(n, dim, draw_from(base)), _blocks(n_queries, dim, draw_from(held))


def overlap_mixture(n: int, n_queries: int, dim: int = 256, seed: int = 0,
                    components: int = 1000, spread: float = 1.0, decay: float = 1.0
                    ) -> tuple[Tensor, Tensor]:
    """Draws from a heavily overlapping anisotropic Gaussian mixture (see module doc).

    Shapes:
        returns corpus ``[n, dim]`` and queries ``[n_queries, dim]``, unit rows.
    """
    g = torch.Generator().manual_seed(seed)
    scale = torch.arange(1, dim + 1).float() ** (-decay / 2)
    centres = torch.randn(components, dim, generator=g) * scale

    def draw(count: int) -> Tensor:
        pick = torch.randint(components, (count,), generator=g)
        return centres[pick] + spread * torch.randn(count, dim, generator=g) * scale

    return _blocks(n, dim, draw), _blocks(n_queries, dim, draw)


CORPORA = {"digits": digits_projection, "mixture": overlap_mixture}
