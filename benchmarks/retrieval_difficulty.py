"""How hard each benchmark corpus is for approximate search: three standard measures.

For ``--queries`` held-out queries against ``--n`` corpus rows of each family in
:mod:`retrieval_corpora` (unit rows, so Euclidean distance is ``sqrt(2 - 2 cos)``):

* local intrinsic dimension: the Levina-Bickel maximum-likelihood estimate over each
  query's ``k`` nearest rows (median over queries); the higher, the more cells or graph
  hops an index visits for the same recall;
* relative contrast: mean distance to the corpus over distance to the nearest row (median);
  near 1, the nearest neighbours barely stand out;
* PCA participation ratio: ``(sum λ)^2 / sum λ^2`` of the rows' covariance spectrum.

    .venv/bin/python benchmarks/retrieval_difficulty.py --n 100000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from retrieval_corpora import CORPORA


def difficulty(corpus: torch.Tensor, queries: torch.Tensor, k: int) -> dict[str, float]:
    """The three measures of the module doc.

    Shapes:
        corpus: ``[N, D]`` and queries ``[Q, D]``, unit rows.
    """
    scores = queries @ corpus.T
    top, _ = scores.topk(k, dim=1)
    near = (2 - 2 * top).clamp_min(1e-12).sqrt()  # [Q, k], nearest first
    lid = -1.0 / torch.log(near[:, :-1] / near[:, -1:]).mean(dim=1)
    contrast = (2 - 2 * scores).clamp_min(0).sqrt().mean(dim=1) / near[:, 0]
    sample = corpus[:20_000] - corpus[:20_000].mean(dim=0)
    spectrum = torch.linalg.eigvalsh(sample.T @ sample / len(sample))
    return {"lid": float(lid.median()), "relative_contrast": float(contrast.median()),
            "participation_ratio": float(spectrum.sum() ** 2 / (spectrum ** 2).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=100, help="neighbours of the LID estimate")
    parser.add_argument("--dim", type=int, default=256)
    args = parser.parse_args()
    for name, make in CORPORA.items():
        corpus, queries = make(args.n, args.queries, dim=args.dim)
        found = difficulty(corpus, queries, args.k)
        print(f"{name}: LID@{args.k} {found['lid']:.1f}, relative contrast "
              f"{found['relative_contrast']:.2f}, PCA participation ratio "
              f"{found['participation_ratio']:.1f}", flush=True)


if __name__ == "__main__":
    main()
