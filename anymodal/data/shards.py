"""Streaming tar shards with the ``webdataset`` library, for corpora larger than a disk.

A sample's files are named ``<key>.<modality>.<ext>`` (``x1.audio.wav``, ``x1.text.txt``,
``x1.label.cls``). Each shard is read once per epoch by one process and one worker
(``split_by_node`` then ``split_by_worker``), so W processes read disjoint shards.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from torch.utils.data import IterableDataset

from anymodal.errors import DataError
from anymodal.types import ModalitySpec

from .collate import BadRow, Row
from .rows import load_row

__all__ = ["ShardDataset"]

_TEXT_EXTENSIONS = ("txt", "text", "caption")


class ShardDataset(IterableDataset[Row | BadRow]):
    """Rows streamed from tar shards.

    Args:
        urls: a shard pattern (``data/shard-{000000..000009}.tar``), a path or a list.
        modalities: modality key -> bound spec.
        train: augmentation on, and shards shuffled per epoch.
        on_error: ``skip`` or ``raise``, as for manifests.
        seed: the shard-shuffle seed (with the epoch set by :meth:`set_epoch`).
    """

    def __init__(self, urls: str | list[str], modalities: Mapping[str, ModalitySpec],
                 train: bool = True, on_error: str = "skip", seed: int = 0) -> None:
        self.urls = urls
        self.modalities = dict(modalities)
        self.train = train
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Row | BadRow]:
        import webdataset as wds

        dataset = wds.WebDataset(
            self.urls, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker,
            shardshuffle=100 if self.train else False, seed=self.seed + self.epoch,
            empty_check=False, handler=wds.reraise_exception,
        )
        for index, sample in enumerate(dataset):
            yield self._row(index, sample)

    def _row(self, index: int, sample: dict[str, Any]) -> Row | BadRow:
        key = str(sample.get("__key__", index))
        where = f"{sample.get('__url__', self.urls)}:{key}"
        sources: dict[str, Any] = {}
        temp_files: list[str] = []
        label = None
        try:
            for name, value in sample.items():
                if name.startswith("__"):
                    continue
                modality, _, ext = name.partition(".")
                if modality in ("label", "cls"):
                    label = int(value.decode() if isinstance(value, bytes) else value)
                elif modality in self.modalities:
                    sources[modality] = self._source(value, ext, temp_files)
            return load_row(index, key, sources, label, self.modalities, self.train,
                            self.on_error)
        except DataError as exc:
            raise DataError(where, exc.problem) from None
        finally:
            for path in temp_files:
                os.unlink(path)

    @staticmethod
    def _source(value: bytes, ext: str, temp_files: list[str]) -> Any:
        # Every plugin reads paths, not every decoder reads bytes: hand over a temp file.
        if ext in _TEXT_EXTENSIONS:
            return value.decode("utf-8")
        handle, path = tempfile.mkstemp(suffix=f".{ext}" if ext else "")
        with os.fdopen(handle, "wb") as out:
            out.write(value)
        temp_files.append(path)
        return path
