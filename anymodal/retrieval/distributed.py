"""Embed and index a corpus across processes: ``accelerate launch -m anymodal index build``.

The items are cut into shards of ``shard_size`` consecutive items (a multiple of the batch
size, so that every batch holds the same items as in a one-process build and the vectors
come out bit for bit the same). Shard ``s`` belongs to process ``s mod world``; each
process embeds its shards in order and writes each to ``work_dir/shard-SSSSS.safetensors``
(written under a temporary name, then renamed: a shard file is whole or absent). The main
process shows the progress of its own shards. When all are written, the main process
merges them in shard order into one :class:`~anymodal.retrieval.index.Index` — the same ids,
payloads, rows and FAISS index as ``Index.build`` in one process — and saves it.

**Resuming.** A build that was interrupted is started again with the same command: a shard
already written, by the same model (fingerprint), for the same items (a digest of their
ids) and the same batch size, is kept; any other shard file is embedded again. The work
folder is removed after a successful merge (``keep_shards`` keeps it).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from anymodal.errors import ConfigError, DataError
from anymodal.utils.atomic import atomic_file

if TYPE_CHECKING:
    from accelerate import Accelerator

    from anymodal.model import MultiModalModel
    from anymodal.retrieval.index import Index

__all__ = ["ShardJob", "build_index_distributed", "default_ids_and_payloads"]


@dataclass
class ShardJob:
    """What every process agrees on: the items, their ids, how they are cut.

    Args:
        modality: the model's modality key.
        items: every item of the corpus (each process holds the full list).
        ids: one id per item.
        shard_size: items per shard (a multiple of ``batch_size``).
        batch_size: items embedded at once.
        fingerprint: the model's fingerprint.
        work_dir: where shard files are written.
    """

    modality: str
    items: list[Any]
    ids: list[str]
    shard_size: int
    batch_size: int
    fingerprint: str
    work_dir: Path

    @property
    def shards(self) -> int:
        """How many shards the items make."""
        return math.ceil(len(self.items) / self.shard_size)

    def bounds(self, shard: int) -> tuple[int, int]:
        """``(start, stop)`` item positions of a shard."""
        start = shard * self.shard_size
        return start, min(start + self.shard_size, len(self.items))

    def path(self, shard: int) -> Path:
        """The shard's file."""
        return self.work_dir / f"shard-{shard:05d}.safetensors"

    def stamp(self, shard: int) -> dict[str, str]:
        """The metadata a kept shard must carry (model, items, batching)."""
        start, stop = self.bounds(shard)
        digest = hashlib.sha256(json.dumps(self.ids[start:stop]).encode()).hexdigest()
        return {"fingerprint": self.fingerprint, "modality": self.modality,
                "start": str(start), "stop": str(stop), "ids_sha256": digest,
                "batch_size": str(self.batch_size)}


def default_ids_and_payloads(items: Sequence[Any], ids: Sequence[Any] | None,
                             payloads: Sequence[Any] | None) -> tuple[list[str], list[Any]]:
    """The ids and payloads ``Index.build`` gives a new index (positions; path strings)."""
    out_ids = [str(i) for i in range(len(items))] if ids is None else [str(i) for i in ids]
    if payloads is None:
        payloads = [str(x) if isinstance(x, (str, os.PathLike)) else None for x in items]
    if len(out_ids) != len(items) or len(payloads) != len(items):
        raise ValueError(f"{len(items)} items but {len(out_ids)} ids and {len(payloads)} "
                         "payloads")
    return out_ids, list(payloads)


def _read_shard(job: ShardJob, shard: int) -> tuple[Tensor, Tensor, list[list[Any]]] | None:
    """``(embeddings, positions, failures)`` of a valid shard file, or None."""
    path = job.path(shard)
    if not path.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError):
        return None  # damaged: embedded again
    if any(meta.get(key) != value for key, value in job.stamp(shard).items()):
        return None  # another model, other items or other batches: embedded again
    return tensors["embeddings"], tensors["positions"], json.loads(meta["failures"])


def _embed_shard(model: MultiModalModel, job: ShardJob, shard: int, on_error: str) -> None:
    """Embed one shard and write its file atomically."""
    from anymodal.model.embed import embed_items

    start, stop = job.bounds(shard)
    failed: list[tuple[int, str]] = []
    try:
        embeddings = embed_items(model, job.modality, job.items[start:stop], job.batch_size,
                                 progress=False, on_error=on_error, failures=failed)
    except DataError as exc:  # name the item by its place in the whole corpus
        raise DataError(f"shard {shard} (items {start}-{stop - 1}), {exc.source}",
                        exc.problem) from None
    bad = {i for i, _ in failed}
    positions = torch.tensor([start + i for i in range(stop - start) if i not in bad],
                             dtype=torch.long)
    meta = {**job.stamp(shard),
            "failures": json.dumps([[start + i, reason] for i, reason in failed])}
    with atomic_file(job.path(shard)) as staging:
        save_file({"embeddings": embeddings.contiguous(), "positions": positions},
                  str(staging), metadata=meta)


def _embed_mine(model: MultiModalModel, job: ShardJob, rank: int, world: int,
                on_error: str, progress: bool) -> int:
    """Embed this process's shards that are not already written; returns how many."""
    mine = list(range(rank, job.shards, world))
    total = sum(job.bounds(s)[1] - job.bounds(s)[0] for s in mine)
    bar = tqdm(total=total, desc=f"embed {job.modality} (process {rank} of {world})",
               unit="item", disable=not progress)
    done = 0
    try:
        for shard in mine:
            if _read_shard(job, shard) is None:
                _embed_shard(model, job, shard, on_error)
                done += 1
            start, stop = job.bounds(shard)
            bar.update(stop - start)
    finally:
        bar.close()
    return done


def _merge(job: ShardJob, payloads: list[Any], backend: str, options: dict[str, Any],
           dim: int, failures: list[tuple[int, str]] | None) -> Index:
    """Every shard, in order, into one index (the main process)."""
    from anymodal.retrieval.index import Index

    index = Index(torch.empty(0, dim), modality=job.modality, fingerprint=job.fingerprint,
                  backend=backend, **options)
    for shard in range(job.shards):
        read = _read_shard(job, shard)
        if read is None:
            raise ConfigError(f"shard {shard} ({job.path(shard)}) is missing or was written "
                              "for other items or another model: run the build again")
        embeddings, positions, failed = read
        rows = positions.tolist()
        index.add_embeddings(embeddings, [job.ids[p] for p in rows], [payloads[p] for p in rows])
        if failures is not None:
            failures.extend((int(p), str(reason)) for p, reason in failed)
    return index


def _make_accelerator() -> Accelerator:
    from accelerate import Accelerator

    # Without cpu=True, processes launched on a machine with no GPU do not join.
    return Accelerator(cpu=not torch.cuda.is_available())


def _check_arguments(model: MultiModalModel, modality: str, shard_size: int | None,
                     batch_size: int, backend: str, options: dict[str, Any]) -> int:
    """Refuse bad arguments before any process embeds anything; returns the shard size."""
    from anymodal.retrieval.index import Index

    shard_size = shard_size or 16 * batch_size
    if shard_size < 1 or shard_size % batch_size:
        raise ConfigError(f"shard_size {shard_size} must be a positive multiple of the batch "
                          f"size {batch_size} (so batches match a one-process build)")
    if modality not in model.modalities:
        raise ConfigError(f"the model has no modality {modality!r} "
                          f"({sorted(model.modalities)})")
    Index(torch.empty(0, 1), modality=modality, backend=backend, **options)  # checks options
    return shard_size


def build_index_distributed(model: MultiModalModel, modality: str, items: Sequence[Any],
                            output: str | os.PathLike[str], ids: Sequence[Any] | None = None,
                            payloads: Sequence[Any] | None = None, *,
                            work_dir: str | os.PathLike[str] | None = None,
                            shard_size: int | None = None, batch_size: int = 64,
                            progress: bool = True, on_error: str = "raise",
                            failures: list[tuple[int, str]] | None = None,
                            backend: str = "exact", keep_shards: bool = False,
                            accelerator: Accelerator | None = None,
                            **options: Any) -> Index | None:
    """Embed ``items`` across the launched processes and save one index at ``output``.

    Every process calls this with the same arguments. Works in one process too (then it is
    ``Index.build`` with resumable shards).

    Args:
        model: the model, the same on every process.
        modality: the model's modality key of the items.
        items: the whole corpus (every process passes all of it).
        output: the index folder written by the main process.
        ids: one per item (default: positions as strings).
        payloads: one per item (default: the item when it is a path or a string).
        work_dir: the shard folder (default ``<output>.shards``); kept shards resume a build.
        shard_size: items per shard, a multiple of ``batch_size`` (default 16 batches).
        keep_shards: keep the shard folder after the merge.
        accelerator: an existing one (default: a new ``Accelerator``, ``cpu=True`` when
            there is no GPU).
        batch_size: items embedded at once.
        progress: a progress bar on the main process.
        on_error: ``raise`` or ``skip`` bad items.
        failures: receives ``(position, reason)`` of skipped items (main process).
        backend: ``exact`` or a FAISS kind.
        **options: :class:`~anymodal.retrieval.backends.FaissOptions` fields.

    Returns:
        The merged index on the main process, None on the others.
    """
    shard_size = _check_arguments(model, modality, shard_size, batch_size, backend, options)
    items = list(items)
    all_ids, all_payloads = default_ids_and_payloads(items, ids, payloads)
    work = Path(work_dir) if work_dir is not None else Path(f"{os.fspath(output)}.shards")
    accelerator = accelerator or _make_accelerator()
    model.to(accelerator.device)
    job = ShardJob(modality, items, all_ids, shard_size, batch_size, model.fingerprint(), work)
    if accelerator.is_main_process:
        work.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    _embed_mine(model, job, accelerator.process_index, accelerator.num_processes, on_error,
                progress and accelerator.is_local_main_process)
    accelerator.wait_for_everyone()
    index = None
    if accelerator.is_main_process:
        index = _merge(job, all_payloads, backend, options, model.embed_dim, failures)
        index.save(output)
        if not keep_shards:
            shutil.rmtree(work, ignore_errors=True)
    accelerator.wait_for_everyone()
    return index
