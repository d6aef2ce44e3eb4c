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
from .guard import DEFAULT_LOAD_TIMEOUT
from .labels import parse_label
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
        load_timeout: seconds one item may take to load (``0``: no limit).
    """

    def __init__(self, urls: str | list[str], modalities: Mapping[str, ModalitySpec],
                 train: bool = True, on_error: str = "skip", seed: int = 0,
                 load_timeout: float = DEFAULT_LOAD_TIMEOUT) -> None:
        self.urls = urls
        self.load_timeout = float(load_timeout)
        self.modalities = dict(modalities)
        self.train = train
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle the shards for ``epoch`` (called by the loop at each epoch)."""
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
        """One sample as a row; a bad sample is a :class:`BadRow` under ``skip``."""
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
                    label = parse_label(value, f"{where} {name}")
                elif modality in self.modalities:
                    sources[modality] = self._source(value, ext, temp_files, f"{where} {name}")
            return load_row(index, key, sources, label, self.modalities, self.train,
                            self.on_error, timeout=self.load_timeout)
        except DataError as exc:
            if self.on_error == "raise":
                raise DataError(where, exc.problem) from None
            return BadRow(index, key, where, exc.problem)
        finally:
            for path in temp_files:
                os.unlink(path)

    @staticmethod
    def _source(value: bytes, ext: str, temp_files: list[str], where: str) -> Any:
        # Every plugin reads paths, not every decoder reads bytes: hand over a temp file.
        if ext in _TEXT_EXTENSIONS:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(where, f"is not valid UTF-8 (byte 0x{value[exc.start]:02x} "
                                f"at offset {exc.start})") from None
        handle, path = tempfile.mkstemp(suffix=f".{ext}" if ext else "")
        with os.fdopen(handle, "wb") as out:
            out.write(value)
        temp_files.append(path)
        return path
