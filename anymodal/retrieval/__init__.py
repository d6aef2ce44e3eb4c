"""Indexes, any-to-any search with each objective's own scoring, and metrics.

Modules:

* :mod:`~anymodal.retrieval.index`: ``Index`` (build, add, remove, save, load) and ``Hit``.
* :mod:`~anymodal.retrieval.storage`: the index folder format and ``IndexFileError``.
* :mod:`~anymodal.retrieval.backends`: exact chunked top-k, and the FAISS backends.
* :mod:`~anymodal.retrieval.search`: ``search`` (ranked by ``model.score``) and Symile
  ``search_tuples`` (through :func:`anymodal.kernels.mip_topk`).
* :mod:`~anymodal.retrieval.metrics`: recall@k, median rank, MRR, mAP, zero-shot accuracy,
  alignment and uniformity (pure functions).
* :mod:`~anymodal.retrieval.evaluation`: retrieval tasks and zero-shot on a manifest.
* :mod:`~anymodal.retrieval.report`: ``anymodal report`` (PNG, HTML, JSON).
* the commands `anymodal embed|index|search|eval|report` live in :mod:`anymodal.cli`.

Nothing is imported here, so that ``anymodal --help`` stays fast; ``anymodal.Index`` and
``anymodal.search`` are the public entry points.
"""
