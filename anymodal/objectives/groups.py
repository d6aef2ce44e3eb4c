"""Rows grouped by the modalities they have, for the higher-order objectives.

Subset-consistent training (:mod:`anymodal.data.subsets`) hides modalities per row, so one
batch holds tuples of several shapes. A higher-order term (a Symile product, a GRAM
volume) of a row without modality ``h`` must be contrasted with candidates of the same
shape, since a query without ``h`` is scored that way; a candidate tuple that still holds
a real ``h`` would let the loss tell the positive apart by ``h`` alone. So the rows of a
batch are grouped by their presence pattern, and each group is scored against every row
that has (at least) the group's members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Group", "groups"]


@dataclass
class Group:
    """Rows of a batch that have the same members, and the rows they are scored against.

    Args:
        anchor: the modality in the anchor role for these rows.
        members: the other modalities they have, in the batch's order.
        rows: which global rows are in the group. ``BoolTensor[N]``.
        candidates: the rows that have the anchor and every member (``rows`` among them).
    """

    anchor: str
    members: tuple[str, ...]
    rows: Tensor
    candidates: Tensor

    def have(self, names: list[str]) -> list[str]:
        """The group's modalities (anchor and members) in the order of ``names``."""
        return [m for m in names if m == self.anchor or m in self.members]


def groups(present: Mapping[str, Tensor], anchor: str) -> list[Group]:
    """The rows of a batch grouped by the modalities they have.

    A row's tuple is its present modalities: ``anchor`` in the anchor role when the row
    has it, else its present modality first by name (not by the batch's order, so that a
    loss does not depend on the order of the modalities). Rows with fewer than two
    modalities take no part. Groups come in ascending order of their presence pattern read
    in the batch's modality order (``False < True``), so every process, which sees the same
    gathered masks, finds the same groups in the same order. Without hidden modalities
    there is one group, the whole batch.

    Shapes:
        present: ``{m: BoolTensor[N]}`` in the batch's modality order.
    """
    names = list(present)
    mask = torch.stack([present[m] for m in names], dim=1)  # [N, M]
    order = [names.index(anchor)] + [names.index(m) for m in sorted(names) if m != anchor]
    found = []
    for pattern in torch.unique(mask, dim=0).tolist():
        have = [k for k in order if pattern[k]]
        if len(have) < 2:
            continue
        rows = (mask == torch.tensor(pattern, device=mask.device)).all(dim=1)
        candidates = mask[:, have].all(dim=1)
        members = tuple(names[k] for k in sorted(have[1:]))
        found.append(Group(names[have[0]], members, rows, candidates))
    return found
