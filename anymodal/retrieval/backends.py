"""Search backends of an index: exact chunked top-k in torch, and FAISS (flat, IVF, HNSW).

The exact path scores the corpus one chunk at a time with any scoring function and keeps a
running top-k, so that the ``[Q, N]`` score matrix never exists whole: memory is
``O(Q · (chunk + k))`` whatever ``N``. FAISS searches by inner product only; the search
module turns a query into one vector where the objective allows it, and re-ranks FAISS's
candidates with the objective's own score (see :mod:`anymodal.retrieval.search`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from anymodal.errors import ConfigError

__all__ = ["BACKENDS", "FaissOptions", "FaissSearcher", "chunked_topk", "import_faiss"]

BACKENDS = ("exact", "flat", "ivf", "hnsw")


@torch.no_grad()
def chunked_topk(score_fn: Callable[[Tensor], Tensor], candidates: Tensor, k: int,
                 chunk_size: int = 65536, device: torch.device | str | None = None
                 ) -> tuple[Tensor, Tensor]:
    """The ``k`` best candidates of each query under ``score_fn``, a chunk at a time.

    Args:
        score_fn: ``chunk [C, D] -> scores [Q, C]`` (higher is better).
        candidates: the corpus, on any device; each chunk is moved to ``device``.
        k: results per query, ``1 <= k <= N``.
        chunk_size: candidates scored at once.
        device: where chunks are scored (default: where ``candidates`` are).

    Returns:
        ``(values, indices)`` best first; among equal scores the order is unspecified.

    Shapes:
        candidates: ``[N, D]``; returns ``[Q, k]`` float and ``[Q, k]`` int64, on ``device``.
    """
    n = candidates.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    device = torch.device(device) if device is not None else candidates.device
    best_v: Tensor | None = None
    best_i: Tensor | None = None
    for start in range(0, n, chunk_size):
        chunk = candidates[start:start + chunk_size].to(device, non_blocking=True)
        scores = score_fn(chunk)
        v, i = scores.topk(min(k, scores.shape[1]), dim=1)
        i = i + start
        if best_v is None or best_i is None:
            best_v, best_i = v, i
        else:
            merged = torch.cat([best_v, v], dim=1)
            best_v, pos = merged.topk(min(k, merged.shape[1]), dim=1)
            best_i = torch.cat([best_i, i], dim=1).gather(1, pos)
    assert best_v is not None and best_i is not None
    return best_v, best_i


def import_faiss() -> Any:
    """The ``faiss`` module, or a :class:`ConfigError` that says how to install it."""
    try:
        import faiss
    except ImportError:
        raise ConfigError(
            "a FAISS backend was asked for, but faiss is not installed: "
            "pip install faiss-cpu (or anymodal[faiss]), or use backend='exact'"
        ) from None
    return faiss


@dataclass
class FaissOptions:
    """Parameters of a FAISS backend (inner-product metric throughout).

    Args:
        kind: ``flat`` (exact, brute force), ``ivf`` (inverted lists over k-means cells)
            or ``hnsw`` (graph).
        nlist: IVF cells; default ``min(1024, 4·sqrt(N))``, at most ``N / 39``.
        nprobe: IVF cells visited per query.
        train_size: IVF k-means training rows (a seeded sample of at most this many).
        hnsw_m: HNSW links per node.
        ef_construction: HNSW candidate list while building.
        ef_search: HNSW candidate list while searching.
    """

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int = 16
    train_size: int = 65536
    hnsw_m: int = 32
    ef_construction: int = 40
    ef_search: int = 64

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS[1:]:
            raise ConfigError(f"FAISS backend kind {self.kind!r}; valid: {list(BACKENDS[1:])}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_numpy(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


class FaissSearcher:
    """A FAISS index over the rows of an :class:`~anymodal.retrieval.index.Index`.

    Row ``i`` of the FAISS index is row ``i`` of the embeddings; rows are appended by
    :meth:`add`; a removal makes the owner rebuild it.
    """

    def __init__(self, options: FaissOptions, dim: int) -> None:
        self.options = options
        self.dim = dim
        self.faiss = import_faiss()
        self.index: Any = None

    def _make(self, n: int) -> Any:
        faiss, o = self.faiss, self.options
        if o.kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if o.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, o.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = o.ef_construction
            return index
        nlist = o.nlist or min(1024, int(4 * math.sqrt(n)))
        nlist = max(1, min(nlist, n // 39 if n >= 39 else 1))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        self._quantizer = quantizer  # the IVF index points to it: keep it alive
        return index

    def _configure(self) -> None:
        if self.options.kind == "ivf":
            self.index.nprobe = self.options.nprobe
        elif self.options.kind == "hnsw":
            self.index.hnsw.efSearch = self.options.ef_search

    def build(self, embeddings: Tensor) -> None:
        """(Re)build from all rows; IVF trains its cells on a seeded sample first.

        Shapes:
            embeddings: ``[N, D]``.
        """
        data = _as_numpy(embeddings)
        self.index = self._make(len(data))
        if self.options.kind == "ivf" and len(data):
            rows = len(data)
            if rows > self.options.train_size:
                pick = np.random.default_rng(0).choice(rows, self.options.train_size,
                                                       replace=False)
                sample = data[np.sort(pick)]
            else:
                sample = data
            self.index.train(sample)
        if len(data):
            self.index.add(data)
        self._configure()

    def add(self, embeddings: Tensor) -> None:
        """Append rows (an IVF index keeps its trained cells)."""
        if self.index is None:
            raise RuntimeError("build the FAISS index before adding to it")
        self.index.add(_as_numpy(embeddings))

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Inner-product search. Missing results (fewer than ``k`` found) have index -1.

        Shapes:
            queries: ``[Q, D]``; returns scores ``[Q, k]`` and indices ``[Q, k]`` (int64).
        """
        self._configure()
        scores, indices = self.index.search(_as_numpy(queries), k)
        return torch.from_numpy(scores), torch.from_numpy(indices).long()

    def serialize(self) -> Tensor:
        """The built index as bytes (``faiss.serialize_index``), for the index file."""
        return torch.from_numpy(np.array(self.faiss.serialize_index(self.index), copy=True))

    @classmethod
    def deserialize(cls, options: FaissOptions, dim: int, blob: Tensor) -> FaissSearcher:
        searcher = cls(options, dim)
        searcher.index = searcher.faiss.deserialize_index(blob.numpy())
        searcher._configure()
        return searcher
