"""Quick FAISS index-factory sweeps on the retrieval corpora, beside the library's exact search.

Used to choose the library's defaults before a full ``retrieval.py`` run: builds each
FAISS ``index_factory`` string (inner product) on a corpus of :mod:`retrieval_corpora`,
then for each parameter setting (FAISS ``ParameterSpace`` syntax) measures recall@10
(overlap with the exact top-10) and the batch QPS of 500 held-out queries, best of two
calls, over the batch QPS of :meth:`anymodal.Index.exact_topk` measured at the start.
torch and FAISS use the same number of threads.

    EFC=200 .venv/bin/python benchmarks/retrieval_faiss_sweep.py digits 100000 \\
        "HNSW32|efSearch=64;efSearch=128"
    .venv/bin/python benchmarks/retrieval_faiss_sweep.py mixture 100000 \\
        "IVF2048,Flat|nprobe=8;nprobe=16"

``EFC`` sets HNSW's efConstruction (default 80); IVF k-means runs 10 iterations on
40 rows a cell.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from retrieval_corpora import CORPORA

from anymodal.retrieval.index import Index
from anymodal.retrieval.metrics import neighbour_recall


def build(spec: str, data: np.ndarray, faiss: Any) -> tuple[Any, float]:
    """``(index, seconds)``: the factory string built, trained on a seeded sample, filled."""
    started = time.perf_counter()
    index = faiss.index_factory(data.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    train = len(data)
    try:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter, ivf.cp.max_points_per_centroid = 10, 40
        train = min(len(data), 40 * ivf.nlist)
    except RuntimeError:  # not an IVF index
        pass
    graph = faiss.downcast_index(index)
    if isinstance(graph, faiss.IndexHNSW):
        graph.hnsw.efConstruction = int(os.environ.get("EFC", "80"))
    if not index.is_trained:
        pick = np.sort(np.random.default_rng(0).choice(len(data), train, replace=False))
        index.train(data[pick])
    index.add(data)
    return index, time.perf_counter() - started


def main() -> None:
    import faiss

    name, n, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    faiss.omp_set_num_threads(torch.get_num_threads())
    corpus, queries = CORPORA[name](n, 500)
    exact = Index(corpus, modality="x")
    started = time.perf_counter()
    _, truth = exact.exact_topk(lambda chunk: queries @ chunk.T, 10)
    exact_qps = len(queries) / (time.perf_counter() - started)
    print(f"{name} N={n:,}: exact batch QPS {exact_qps:.0f}, load {os.getloadavg()[0]:.1f}")
    data, q = corpus.numpy(), np.ascontiguousarray(queries.numpy())
    for entry in specs:
        spec, settings = entry.split("|")
        index, seconds = build(spec, data, faiss)
        print(f"== {spec}: built in {seconds:.0f} s", flush=True)
        for setting in settings.split(";"):
            faiss.ParameterSpace().set_index_parameters(index, setting)
            best = 0.0
            for _ in range(2):
                started = time.perf_counter()
                _, found = index.search(q, 10)
                best = max(best, len(q) / (time.perf_counter() - started))
            recall = neighbour_recall(torch.from_numpy(found).long(), truth)
            print(f"  {setting}: recall@10 {recall:.3f}, batch QPS {best:.0f} "
                  f"({best / exact_qps:.1f}x exact)", flush=True)


if __name__ == "__main__":
    main()
