"""``Index``: the normalised embeddings of one modality, with ids and payloads.

An index belongs to the model that embedded it: it records the model's fingerprint, and
:func:`anymodal.search` refuses an index built by another model (its vectors live in
another space). Search is exact by default (chunked torch, any scoring rule, CPU or GPU);
``backend="flat" | "ivf" | "hnsw"`` adds a FAISS index for large corpora.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from anymodal.errors import ConfigError
from anymodal.retrieval.backends import BACKENDS, FaissOptions, FaissSearcher, chunked_topk
from anymodal.retrieval.storage import IndexFileError, StoredIndex, read_index, write_index

if TYPE_CHECKING:
    from anymodal.model import MultiModalModel

__all__ = ["Hit", "Index"]


class Hit(NamedTuple):
    """One search result: unpacks as ``(id, score, payload)``."""

    id: str
    score: float
    payload: Any


def _normalise(x: Tensor) -> Tensor:
    """L2-normalised float rows; a NaN or infinite row is refused, named by its position."""
    x = x.detach().float()
    bad = (~torch.isfinite(x).all(dim=1)).nonzero().flatten()
    if bad.numel():
        raise ValueError(f"{bad.numel()} embedding rows contain NaN or infinite values "
                         f"(the first is row {int(bad[0])} of those added)")
    return torch.nn.functional.normalize(x, dim=-1)


class Index:
    """Normalised embeddings of one modality, their ids and optional payloads.

    Args:
        embeddings: the rows (normalised here).
        ids: one unique id per row (default ``"0", "1", ...``).
        payloads: one JSON-serialisable value per row (a path, a caption, a dict), or None.
        modality: the model's modality key the rows belong to.
        fingerprint: the fingerprint of the model that embedded them (None: unchecked).
        backend: ``exact`` (chunked torch), or a FAISS kind ``flat``, ``ivf``, ``hnsw``,
            ``ivfpq`` (PQ codes, candidates re-ranked with the exact rows).
        chunk_size: rows scored at once by the exact search.
        **faiss_options: :class:`FaissOptions` fields (``nprobe``, ``hnsw_m``...).

    Shapes:
        embeddings: ``[N, D]``.
    """

    def __init__(self, embeddings: Tensor, ids: Sequence[Any] | None = None,
                 payloads: Sequence[Any] | None = None, *, modality: str,
                 fingerprint: str | None = None, backend: str = "exact",
                 chunk_size: int = 65536, **faiss_options: Any) -> None:
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be [N, D], got {tuple(embeddings.shape)}")
        if backend not in BACKENDS:
            raise ConfigError(f"index backend {backend!r}; valid choices: {list(BACKENDS)}")
        self.modality = modality
        self.fingerprint = fingerprint
        self.backend = backend
        self.chunk_size = int(chunk_size)
        self.faiss_options = FaissOptions(kind=backend if backend != "exact" else "flat",
                                          **faiss_options)
        self.embeddings = torch.empty(0, embeddings.shape[1])
        self.ids: list[str] = []
        self.payloads: list[Any] = []
        self._rows: dict[str, int] = {}
        self._faiss: FaissSearcher | None = None
        self._faiss_stale = True
        self.created = time.time()
        self.add_embeddings(embeddings, ids, payloads)

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def build(cls, model: MultiModalModel, modality: str, items: Iterable[Any],
              ids: Sequence[Any] | None = None, payloads: Sequence[Any] | None = None, *,
              batch_size: int = 64, progress: bool = True, on_error: str = "raise",
              failures: list[tuple[int, str]] | None = None, backend: str = "exact",
              **options: Any) -> Index:
        """Embed ``items`` of ``modality`` with ``model`` and index them.

        Args:
            model: the model that embeds the items (its fingerprint is recorded).
            modality: the model's modality key the items belong to.
            items: paths, bytes, strings or tensors, as the modality loads them.
            ids: one per item (default: the item's position as a string).
            payloads: one per item (default: the item itself when it is a path or a
                string, else None).
            batch_size: items embedded at once.
            progress: show a progress bar.
            on_error: ``raise``, or ``skip`` (bad items are left out and ``(position,
                reason)`` appended to ``failures``).
            failures: where skipped items are reported (with ``on_error="skip"``).
            backend: ``exact``, ``flat``, ``ivf``, ``ivfpq`` or ``hnsw`` (see :class:`Index`).
            **options: the backend's options (see :class:`Index`).
        """
        index = cls(torch.empty(0, model.embed_dim), modality=modality,
                    fingerprint=model.fingerprint(), backend=backend, **options)
        index.add(model, items, ids, payloads, batch_size=batch_size, progress=progress,
                  on_error=on_error, failures=failures)
        return index

    def add(self, model: MultiModalModel, items: Iterable[Any],
            ids: Sequence[Any] | None = None, payloads: Sequence[Any] | None = None, *,
            batch_size: int = 64, progress: bool = True, on_error: str = "raise",
            failures: list[tuple[int, str]] | None = None) -> int:
        """Embed and append ``items`` (same arguments as :meth:`build`); returns rows added."""
        from anymodal.model.embed import embed_items

        self.check_model(model)
        if self.modality not in model.modalities:
            raise ConfigError(f"the index holds modality {self.modality!r}, which the model "
                              f"does not have ({sorted(model.modalities)})")
        items = list(items)
        ids = self._auto_ids(len(items)) if ids is None else list(ids)
        if payloads is None:
            payloads = [str(x) if isinstance(x, (str, os.PathLike)) else None for x in items]
        if len(ids) != len(items) or len(payloads) != len(items):
            raise ValueError(f"{len(items)} items but {len(ids)} ids and {len(payloads)} payloads")
        failed: list[tuple[int, str]] = []
        embeddings = embed_items(model, self.modality, items, batch_size=batch_size,
                                 progress=progress, on_error=on_error, failures=failed)
        if failures is not None:
            failures.extend(failed)
        bad = {i for i, _ in failed}
        keep = [i for i in range(len(items)) if i not in bad]
        self.add_embeddings(embeddings, [ids[i] for i in keep], [payloads[i] for i in keep])
        return len(keep)

    def add_embeddings(self, embeddings: Tensor, ids: Sequence[Any] | None = None,
                       payloads: Sequence[Any] | None = None) -> None:
        """Append rows that are already embedded (normalised here).

        Shapes:
            embeddings: ``[n, D]``.
        """
        n = embeddings.shape[0]
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"embeddings must be [n, {self.dim}], got {tuple(embeddings.shape)}")
        new_ids = self._auto_ids(n) if ids is None else [str(i) for i in ids]
        new_payloads = [None] * n if payloads is None else list(payloads)
        if len(new_ids) != n or len(new_payloads) != n:
            raise ValueError(f"{n} rows but {len(new_ids)} ids and {len(new_payloads)} payloads")
        clash = [i for i in new_ids if i in self._rows]
        if clash or len(set(new_ids)) != n:
            raise ValueError(f"ids must be unique; already present or repeated: "
                             f"{(clash or new_ids)[:5]}")
        rows = _normalise(embeddings).to(self.embeddings.device)
        start = len(self.ids)
        self.embeddings = torch.cat([self.embeddings, rows])
        for offset, row_id in enumerate(new_ids):
            self._rows[row_id] = start + offset
        self.ids.extend(new_ids)
        self.payloads.extend(new_payloads)
        if self._faiss is not None and not self._faiss_stale and n:
            self._faiss.add(rows)

    def _auto_ids(self, n: int) -> list[str]:
        """``n`` unused ids ``"<number>"``, counting on from the current size."""
        out: list[str] = []
        number = len(self.ids)
        while len(out) < n:
            if str(number) not in self._rows:
                out.append(str(number))
            number += 1
        return out

    def remove(self, ids: Iterable[Any], missing_ok: bool = False) -> int:
        """Delete rows by id; returns how many were removed.

        Raises:
            KeyError: an id is not in the index (unless ``missing_ok``).
        """
        wanted = {str(i) for i in ids}
        missing = sorted(wanted - self._rows.keys())
        if missing and not missing_ok:
            raise KeyError(f"ids not in the index: {missing[:5]}")
        drop = {self._rows[i] for i in wanted if i in self._rows}
        if not drop:
            return 0
        keep = [r for r in range(len(self.ids)) if r not in drop]
        self.embeddings = self.embeddings[torch.tensor(keep, dtype=torch.long,
                                                       device=self.embeddings.device)]
        self.ids = [self.ids[r] for r in keep]
        self.payloads = [self.payloads[r] for r in keep]
        self._rows = {row_id: r for r, row_id in enumerate(self.ids)}
        self._faiss_stale = True  # FAISS rows are positions: rebuilt at the next search
        return len(drop)

    # -- access ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, row_id: object) -> bool:
        return str(row_id) in self._rows

    def __repr__(self) -> str:
        return (f"Index(modality={self.modality!r}, rows={len(self)}, dim={self.dim}, "
                f"backend={self.backend!r}, fingerprint={self.fingerprint!r})")

    @property
    def dim(self) -> int:
        """The embedding width."""
        return int(self.embeddings.shape[1])

    def row(self, row_id: Any) -> int:
        """The row number of an id."""
        return self._rows[str(row_id)]

    def hit(self, row: int, score: float) -> Hit:
        """The :class:`Hit` of row ``row`` with ``score``."""
        return Hit(self.ids[row], float(score), self.payloads[row])

    def to(self, device: torch.device | str) -> Index:
        """Keep the embeddings on ``device`` (exact search then runs there); returns self."""
        self.embeddings = self.embeddings.to(device)
        return self

    def info(self) -> dict[str, Any]:
        """A summary: modality, rows, dim, backend, fingerprint, memory."""
        return {"modality": self.modality, "rows": len(self), "dim": self.dim,
                "backend": self.backend, "fingerprint": self.fingerprint,
                "embedding_bytes": self.embeddings.numel() * self.embeddings.element_size(),
                "faiss": self.faiss_options.to_dict() if self.backend != "exact" else None}

    def check_model(self, model: MultiModalModel, source: str | Path | None = None) -> None:
        """Raise :class:`IndexFileError` when the index was embedded by another model."""
        if self.fingerprint is None:
            return
        theirs = model.fingerprint()
        if theirs != self.fingerprint:
            raise IndexFileError(
                source or f"index of {self.modality!r}",
                f"was built by the model with fingerprint {self.fingerprint}, not by this "
                f"model ({theirs}): its vectors live in another space; rebuild the index "
                "with this model (anymodal index build)",
            )

    # -- searching ---------------------------------------------------------------------------

    def exact_topk(self, score_fn: Callable[[Tensor], Tensor], k: int,
                   device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Top-``k`` rows of every query by ``score_fn(chunk) -> [Q, chunk]``, chunked.

        Returns:
            ``(scores [Q, k], rows [Q, k])``, best first, on the CPU.
        """
        values, rows = chunked_topk(score_fn, self.embeddings, min(k, len(self)),
                                    self.chunk_size, device)
        return values.cpu(), rows.cpu()

    def faiss_topk(self, vectors: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Top-``k`` rows by inner product with ``vectors`` through FAISS (built on demand).

        Returns:
            ``(scores [Q, k], rows [Q, k])``; a row of -1 means fewer than ``k`` were found.
        """
        if self.backend == "exact":
            raise ConfigError("this index has backend='exact'; build it with a FAISS backend")
        if self._faiss is None or self._faiss_stale:
            self.build_faiss()
        assert self._faiss is not None
        return self._faiss.search(vectors, min(k, len(self)), self.embeddings)

    def tune(self, queries: Tensor, target_recall: float = 0.95, k: int = 10) -> Any:
        """Choose and keep the fastest search setting that reaches ``target_recall``.

        Measured on held-out ``queries`` against the exact answer (see
        :func:`anymodal.retrieval.tune.tune_index`); returns its result.

        Args:
            queries: held-out query vectors.
            target_recall: recall@k to reach.
            k: the k of recall@k.

        Shapes:
            queries: ``[Q, D]``.
        """
        from anymodal.retrieval.tune import tune_index

        return tune_index(self, queries, target_recall, k)

    def build_faiss(self) -> None:
        """(Re)build the FAISS index from the current rows."""
        self._faiss = FaissSearcher(self.faiss_options, self.dim)
        self._faiss.build(self.embeddings)
        self._faiss_stale = False

    # -- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], include_faiss: bool = True) -> Path:
        """Write the index folder (see :mod:`anymodal.retrieval.storage`) atomically.

        A built FAISS index is stored too (``include_faiss``) so that loading does not
        rebuild it; it is covered by the same checksum.
        """
        blob = None
        if include_faiss and self.backend != "exact":
            if self._faiss is None or self._faiss_stale:
                self.build_faiss()
            assert self._faiss is not None
            blob = self._faiss.serialize()
        header = {"modality": self.modality, "fingerprint": self.fingerprint,
                  "backend": self.backend, "faiss_options": self.faiss_options.to_dict(),
                  "chunk_size": self.chunk_size, "created": self.created}
        return write_index(path, StoredIndex(self.embeddings, self.ids, self.payloads,
                                             header, blob))

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: MultiModalModel | None = None,
             backend: str | None = None) -> Index:
        """Read an index folder, verifying its checksums (and its model, when given).

        Args:
            path: the index folder (written by :meth:`save`).
            model: when given, the index must have been built by this model.
            backend: use another backend than the saved one (a saved FAISS index is then
                not used).

        Raises:
            IndexFileError: the folder is missing, damaged, of another format version, or
                was built by another model.
        """
        stored = read_index(path)
        header = stored.header
        options = {k: v for k, v in dict(header.get("faiss_options") or {}).items()
                   if k != "kind"}
        saved_backend = str(header.get("backend", "exact"))
        chosen = backend or saved_backend
        index = cls(torch.empty(0, stored.embeddings.shape[1]), modality=str(header["modality"]),
                    fingerprint=header.get("fingerprint"), backend=chosen,
                    chunk_size=int(header.get("chunk_size", 65536)), **options)
        # Rows were normalised when saved: assign them directly (no second normalisation).
        index.embeddings = stored.embeddings
        index.ids, index.payloads = stored.ids, stored.payloads
        index._rows = {row_id: r for r, row_id in enumerate(stored.ids)}
        index.created = float(header.get("created", index.created))
        if stored.faiss is not None and chosen == saved_backend:
            index._faiss = FaissSearcher.deserialize(index.faiss_options, index.dim, stored.faiss)
            index._faiss_stale = index._faiss.ntotal != len(index)
        if model is not None:
            index.check_model(model, source=Path(path))
        return index
