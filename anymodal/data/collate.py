"""Rows -> a batch with presence masks.

A row is ``{"id": str, "label": int | None, "items": {modality_key: item}}`` (and, when
it was read from sources, ``"keys": {modality_key: source identity}``); a modality absent
from ``items`` is missing for that row. A row that failed to load is a
:class:`BadRow`, carried to the main process so that it can be counted and reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from anymodal.types import IDS_KEY, PRESENT_KEY, Batch, ModalitySpec

__all__ = ["BAD_KEY", "KEYS_KEY", "LABELS_KEY", "ROWS_KEY", "BadRow", "Row", "batch_size",
           "collate_rows", "key_code"]

Row = dict[str, Any]
BAD_KEY = "bad"
LABELS_KEY = "labels"
KEYS_KEY = "item_keys"
# Each row's index in the training set (rows read through EpochRows carry "index"), for
# objectives that keep a state per training row (global_contrastive).
ROWS_KEY = "rows"


def key_code(key: str) -> int:
    """A source key as a non-negative int64.

    Tensors gather across processes, strings do not; 56 bits of BLAKE2b make a collision
    within one validation set negligible.

    Args:
        key: the source key (:func:`anymodal.data.rows.source_key`).
    """
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"),
                                          digest_size=7).digest(), "big")


@dataclass(frozen=True)
class BadRow:
    """A row that could not be loaded: where it came from and why."""

    index: int
    id: str
    source: str
    reason: str

    def as_record(self) -> dict[str, Any]:
        """The row as a JSON-ready record (``bad_samples.jsonl``)."""
        return {"index": self.index, "id": self.id, "source": self.source, "reason": self.reason}


def collate_rows(rows: list[Row | BadRow], modalities: Mapping[str, ModalitySpec]) -> Batch:
    """Collate rows into a batch with presence masks.

    The batch is ``{key: collated, "present": {key: BoolTensor[B]}, "ids", "labels", "bad",
    "item_keys"}``; each modality's plugin collates only the rows that have it.

    ``item_keys[key]`` codes each row's source of that modality (:func:`key_code`; -1
    where the row has no source key, e.g. synthetic rows), so that validation can tell a
    repeated caption from a distinct one.

    Shapes:
        ``present[key]``, ``item_keys[key]``: ``[B]``; ``labels``: ``[B]`` (-1 where
        unknown); ``rows``: ``[B]``, the rows' training-set indices, present when every
        good row carries its ``"index"``; B counts good rows.
    """
    good = [r for r in rows if not isinstance(r, BadRow)]
    batch: Batch = {
        PRESENT_KEY: {},
        IDS_KEY: [str(r["id"]) for r in good],
        LABELS_KEY: torch.tensor(
            [(-1 if r.get("label") is None else int(r["label"])) for r in good],
            dtype=torch.long,
        ),
        BAD_KEY: [r for r in rows if isinstance(r, BadRow)],
        KEYS_KEY: {},
    }
    if good and all("index" in r for r in good):
        batch[ROWS_KEY] = torch.tensor([int(r["index"]) for r in good], dtype=torch.long)
    for key, spec in modalities.items():
        mask = torch.tensor([key in r["items"] for r in good], dtype=torch.bool)
        items = [r["items"][key] for r in good if key in r["items"]]
        if items:
            batch[key] = spec.collate(items)
        batch[PRESENT_KEY][key] = mask
        batch[KEYS_KEY][key] = torch.tensor(
            [key_code(r["keys"][key]) if key in r.get("keys", {}) else -1 for r in good],
            dtype=torch.long)
    return batch


def batch_size(batch: Batch) -> int:
    """The number of good rows of a collated batch."""
    return len(batch[IDS_KEY])
