"""Search backends of an index: exact chunked top-k in torch, and FAISS (flat, IVF, HNSW, IVF-PQ).

The exact path scores the corpus one chunk at a time with any scoring function and keeps a
running top-k, so that the ``[Q, N]`` score matrix never exists whole: memory is
``O(Q · (chunk + k))`` whatever ``N``. FAISS searches by inner product only; the search
module turns a query into one vector where the objective allows it, and re-ranks FAISS's
candidates with the objective's own score (see :mod:`anymodal.retrieval.search`).

Sizes follow the FAISS guide ("Guidelines to choose an index"): an IVF index of ``N`` rows
gets ``nlist ≈ 16·sqrt(N)`` cells (the top of the guide's 4·sqrt(N) to 16·sqrt(N) range:
small cells make each probe cheap, measured at 1M rows in ``benchmarks/results/retrieval.md``)
and its k-means is trained on a sample of ``40·nlist`` rows (the guide asks for 30 to 256
per cell; FAISS warns under 39). From ``HNSW_QUANTIZER_FROM`` cells on, the coarse
quantizer that picks the cells is an HNSW graph over the centroids (the guide's
``IVF..._HNSW32``): with a flat quantizer, comparing a query with 16,000 centroids would
cost more than scanning the probed cells, and assigning a million rows at build time
would cost as much as thousands of exact queries. IVF-PQ stores 8-bit
product-quantisation codes of ``dim / 8`` bytes instead of the vectors and re-ranks its
``refine · k`` candidates with the exact float32 rows that the
:class:`~anymodal.retrieval.index.Index` keeps anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.kernels.running_topk import RunningTopK

__all__ = ["BACKENDS", "FaissOptions", "FaissSearcher", "chunked_topk", "default_nlist",
           "default_train_size", "import_faiss", "rerank_exact", "uses_hnsw_quantizer"]

BACKENDS = ("exact", "flat", "ivf", "hnsw", "ivfpq")
# Search-time settings of each FAISS kind: what Index.tune sweeps and stores.
SEARCH_PARAMETERS = {"flat": (), "ivf": ("nprobe",), "hnsw": ("ef_search",),
                     "ivfpq": ("nprobe", "refine")}
QUANTIZERS = ("flat", "hnsw")
# Cells from which the coarse quantizer is an HNSW graph (quantizer=None); below, a flat
# scan of the centroids is cheap and exact.
HNSW_QUANTIZER_FROM = 1024
QUANTIZER_HNSW_M = 32  # links per centroid in the quantizer graph (the guide's HNSW32)
# Each probe's centroid search keeps at least this many candidates (efSearch), so that the
# quantizer finds the nprobe nearest centroids even when nprobe is small; rows are assigned
# to their cell with the same list (FAISS's default of 16 put rows in a wrong cell: at 100k
# mixture rows recall@10 then crept from 0.92 at nprobe 8 to 0.96 at 24).
QUANTIZER_EF = 64


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
    top = RunningTopK(k)  # the same running top-k as the tuple search (anymodal.kernels)
    for start in range(0, n, chunk_size):
        chunk = candidates[start:start + chunk_size].to(device, non_blocking=True)
        top.push(score_fn(chunk), offset=start)
    return top.result()


@torch.no_grad()
def rerank_exact(queries: Tensor, candidates: Tensor, embeddings: Tensor, k: int,
                 block: int = 256) -> tuple[Tensor, Tensor]:
    """Re-score candidate rows by the exact inner product and keep the ``k`` best.

    Args:
        queries: the query vectors.
        candidates: row numbers per query; -1 marks a missing candidate.
        embeddings: the exact rows the candidates point into.
        k: results kept per query (at most the candidates per query).
        block: queries re-scored at once (bounds the ``[block, L, D]`` gather).

    Returns:
        ``(scores [Q, k], rows [Q, k])`` best first; missing results have row -1.

    Shapes:
        queries: ``[Q, D]``; candidates: ``[Q, L]`` int64; embeddings: ``[N, D]``.
    """
    k = min(k, candidates.shape[1])
    rows_out, scores_out = [], []
    for start in range(0, len(queries), block):
        rows = candidates[start:start + block]
        vectors = embeddings[rows.clamp(min=0)]  # [b, L, D]
        q = queries[start:start + block].to(vectors.dtype)
        scores = torch.einsum("bld,bd->bl", vectors, q).masked_fill(rows < 0, float("-inf"))
        v, pos = scores.topk(k, dim=1)
        scores_out.append(v)
        rows_out.append(rows.gather(1, pos).masked_fill(torch.isinf(v), -1))
    return torch.cat(scores_out), torch.cat(rows_out)


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


def default_nlist(n: int) -> int:
    """IVF cells for ``n`` rows: ``16·sqrt(n)``, the top of the FAISS guide's range.

    At most ``n / 39``, so that every cell has the 39 training rows FAISS asks for.
    """
    if n < 78:
        return 1
    return max(1, min(round(16 * math.sqrt(n)), n // 39))


def uses_hnsw_quantizer(options: FaissOptions, nlist: int) -> bool:
    """Whether an IVF index of ``nlist`` cells picks its cells through an HNSW graph."""
    if options.quantizer is not None:
        return options.quantizer == "hnsw"
    return nlist >= HNSW_QUANTIZER_FROM


def default_train_size(nlist: int, n: int, pq_bits: int | None = None) -> int:
    """k-means training rows: ``40·nlist`` (the guide: 30 to 256 per cell).

    For PQ at least 39 per code of a sub-quantiser; never more than ``n``.
    """
    want = 40 * nlist
    if pq_bits is not None:
        want = max(want, 39 * 2 ** pq_bits)
    return min(n, want)


def _pq_m(dim: int) -> int:
    """Sub-quantisers of PQ: about ``dim / 8``, a divisor of ``dim``.

    A byte per 8 dimensions: codes 32x smaller than float32 rows.
    """
    target = max(1, dim // 8)
    return max(m for m in range(1, target + 1) if dim % m == 0)


@dataclass
class FaissOptions:
    """Parameters of a FAISS backend (inner-product metric throughout).

    Args:
        kind: ``flat`` (exact, brute force), ``ivf`` (inverted lists over k-means cells),
            ``hnsw`` (graph) or ``ivfpq`` (IVF over PQ codes, re-ranked exactly).
        nlist: IVF cells; default :func:`default_nlist` (4·sqrt(N), at most N/39).
        nprobe: IVF cells visited per query.
        train_size: k-means training rows (a seeded sample); default
            :func:`default_train_size` (40·nlist).
        hnsw_m: HNSW links per node.
        ef_construction: HNSW candidate list while building.
        ef_search: HNSW candidate list while searching.
        pq_m: IVF-PQ sub-quantisers (bytes per code); default about dim / 8.
        pq_bits: bits per sub-quantiser code (8: 256 centroids each).
        refine: IVF-PQ candidates per wanted hit that the exact rows re-rank.
        quantizer: how IVF picks the cells of a query: ``flat`` (compares it with every
            centroid) or ``hnsw`` (a graph over the centroids); None: ``hnsw`` from
            ``HNSW_QUANTIZER_FROM`` cells on.
        tuned: what :meth:`Index.tune` chose and measured (None: not tuned).
    """

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int = 16
    train_size: int | None = None
    hnsw_m: int = 32
    ef_construction: int = 40
    ef_search: int = 64
    pq_m: int | None = None
    pq_bits: int = 8
    refine: int = 8
    quantizer: str | None = None
    tuned: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS[1:]:
            raise ConfigError(f"FAISS backend kind {self.kind!r}; valid: {list(BACKENDS[1:])}")
        for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search", "pq_bits", "refine"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"FAISS option {name} must be >= 1, got {getattr(self, name)}")
        if self.quantizer is not None and self.quantizer not in QUANTIZERS:
            raise ConfigError(f"FAISS option quantizer={self.quantizer!r}; valid: "
                              f"{list(QUANTIZERS)} or None (chosen by the number of cells)")

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict (stored in the index header)."""
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
        nlist = max(1, min(o.nlist or default_nlist(n), n))
        if uses_hnsw_quantizer(o, nlist):
            # FAISS's k-means (10 iterations for IVF) assigns its sample through this
            # quantizer at every iteration: a graph search instead of a flat scan there too.
            quantizer = faiss.IndexHNSWFlat(self.dim, QUANTIZER_HNSW_M,
                                            faiss.METRIC_INNER_PRODUCT)
        else:
            quantizer = faiss.IndexFlatIP(self.dim)
        if o.kind == "ivfpq":
            m = o.pq_m or _pq_m(self.dim)
            if self.dim % m:
                raise ConfigError(f"pq_m={m} must divide the dimension {self.dim}")
            # PQ needs 2**bits training rows per sub-quantiser: fewer bits on tiny corpora.
            bits = max(1, min(o.pq_bits, int(math.log2(max(2, n)))))
            index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, bits,
                                     faiss.METRIC_INNER_PRODUCT)
            # Each of the m small k-means needs far fewer rows than the cells do: 64 per
            # code and 10 iterations keep PQ training from dominating the build (measured
            # here: 20k rows, m = 64 took 190 s with FAISS's defaults of 256 and 25).
            index.pq.cp.max_points_per_centroid = 64
            index.pq.cp.niter = 10
        else:
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        self._quantizer = quantizer  # the IVF index points to it: keep it alive
        return index

    def _quantizer_ef(self, ef: int) -> None:
        """Set the candidate list of an HNSW coarse quantizer (nothing for a flat one)."""
        quantizer = self.faiss.downcast_index(self.index.quantizer)
        if isinstance(quantizer, self.faiss.IndexHNSW):
            quantizer.hnsw.efSearch = ef

    def _configure(self) -> None:
        if self.options.kind in ("ivf", "ivfpq"):
            self.index.nprobe = self.options.nprobe
            self._quantizer_ef(max(QUANTIZER_EF, self.options.nprobe))
        elif self.options.kind == "hnsw":
            self.index.hnsw.efSearch = self.options.ef_search

    def _train(self, data: np.ndarray) -> None:
        rows = len(data)
        bits = int(self.index.pq.nbits) if self.options.kind == "ivfpq" else None
        size = self.options.train_size or default_train_size(int(self.index.nlist), rows, bits)
        if rows > size:
            pick = np.random.default_rng(0).choice(rows, size, replace=False)
            data = data[np.sort(pick)]
        self.index.train(data)

    def build(self, embeddings: Tensor) -> None:
        """(Re)build from all rows; IVF trains its cells on a seeded sample first.

        Shapes:
            embeddings: ``[N, D]``.
        """
        data = _as_numpy(embeddings)
        self.index = self._make(len(data))
        if self.options.kind in ("ivf", "ivfpq") and len(data):
            self._train(data)
        self._configure()  # IVF: rows are assigned to cells with the search-time quantizer
        if len(data):
            self.index.add(data)

    def add(self, embeddings: Tensor) -> None:
        """Append rows (an IVF index keeps its trained cells)."""
        if self.index is None:
            raise RuntimeError("build the FAISS index before adding to it")
        self._configure()
        self.index.add(_as_numpy(embeddings))

    @property
    def ntotal(self) -> int:
        """Rows in the FAISS index (0 before it is built)."""
        return 0 if self.index is None else int(self.index.ntotal)

    def search(self, queries: Tensor, k: int, embeddings: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """Inner-product search. Missing results (fewer than ``k`` found) have index -1.

        Args:
            queries: the query vectors (inner product with the rows).
            k: results per query.
            embeddings: the exact rows; IVF-PQ re-ranks its ``refine · k`` candidates with
                them (without them it returns PQ's approximate scores).

        Shapes:
            queries: ``[Q, D]``; returns scores ``[Q, k]`` and indices ``[Q, k]`` (int64).
        """
        self._configure()
        if self.options.kind != "ivfpq" or embeddings is None:
            scores, indices = self.index.search(_as_numpy(queries), k)
            return torch.from_numpy(scores), torch.from_numpy(indices).long()
        wanted = min(self.ntotal, k * self.options.refine)
        _, indices = self.index.search(_as_numpy(queries), max(k, wanted))
        return rerank_exact(queries.detach().cpu().float(), torch.from_numpy(indices).long(),
                            embeddings.cpu(), k)

    def memory_bytes(self) -> int:
        """Bytes of the FAISS structure: its serialised size.

        Vectors or codes, ids, cells, graph links; beside the ``N x D x 4`` bytes of the
        Index's own rows.
        """
        return 0 if self.index is None else int(self.faiss.serialize_index(self.index).size)

    def serialize(self) -> Tensor:
        """The built index as bytes (``faiss.serialize_index``), for the index file."""
        return torch.from_numpy(np.array(self.faiss.serialize_index(self.index), copy=True))

    @classmethod
    def deserialize(cls, options: FaissOptions, dim: int, blob: Tensor) -> FaissSearcher:
        """The searcher of a blob written by :meth:`serialize`."""
        searcher = cls(options, dim)
        searcher.index = searcher.faiss.deserialize_index(blob.numpy())
        searcher._configure()
        return searcher
