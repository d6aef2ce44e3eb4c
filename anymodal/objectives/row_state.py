"""State an objective keeps for every training row, and how a batch's row indices reach it.

SogCLR / FastCLIP (:mod:`anymodal.objectives.global_contrastive`) keep, for each row of the
training set and each direction of each modality pair, a moving average ``u`` of the row's
softmax denominator. :class:`RowDenominators` holds it: one float64 table of ``log u``
(``-inf``: the row was not seen yet), its size fixed when the training loop binds the
objective to its data set. It is not part of the model's weights (a model folder does not
carry it); the training loop registers it with ``accelerator.register_for_checkpointing``,
so each checkpoint holds it and a resume restores it exactly.

The objective's ``forward`` keeps the N-modality signature; the index of each row of the
batch (``batch["rows"]``, collated from the training set's indices) is handed to it by
:func:`batch_rows` around the call, by the model's ``compute_loss`` and by GradCache's loss pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from anymodal.data.collate import ROWS_KEY
from anymodal.errors import ArtifactError, ConfigError, DataError

__all__ = ["RowDenominators", "batch_rows", "direction_name"]


def direction_name(a: str, b: str) -> str:
    """The name of the direction ``a`` -> ``b`` (queries of ``a`` against ``b``)."""
    return f"{a}->{b}"


class RowDenominators:
    """``log u`` per (training row, direction), float64; ``-inf`` where not seen yet.

    Args:
        rows: rows of the training set (the table's first dimension).
        directions: the direction names (:func:`direction_name`), one column each.
    """

    def __init__(self, rows: int, directions: Sequence[str]) -> None:
        if rows < 1:
            raise ConfigError(f"a per-row state needs at least one training row, got {rows}")
        if not directions or len(set(directions)) != len(directions):
            raise ConfigError(f"per-row state: expected distinct directions, got {directions}")
        self.rows = int(rows)
        self.directions = list(directions)
        self.log_u = torch.full((self.rows, len(self.directions)), float("-inf"),
                                dtype=torch.float64)

    def column(self, a: str, b: str) -> int:
        """The column of direction ``a`` -> ``b``."""
        name = direction_name(a, b)
        if name not in self.directions:
            raise ConfigError(f"per-row state has no direction {name!r}; it was built for "
                              f"{self.directions}")
        return self.directions.index(name)

    def to(self, device: torch.device) -> None:
        """Keep the table where the embeddings are (moved once, not per step)."""
        if self.log_u.device != device:
            self.log_u = self.log_u.to(device)

    def check(self, index: Tensor, n: int) -> Tensor:
        """``index`` as a ``LongTensor[n]`` of valid rows, or a :class:`DataError` naming it.

        Args:
            index: the batch's row indices (``batch["rows"]``).
            n: rows of the batch.
        """
        if index.dim() != 1 or index.shape[0] != n:
            raise DataError("batch['rows']", f"has shape {tuple(index.shape)}; expected ({n},), "
                            "one training-set index per row of the batch")
        if index.dtype.is_floating_point or index.dtype == torch.bool:
            raise DataError("batch['rows']", f"has dtype {index.dtype}; expected integers")
        index = index.long()
        if n and (int(index.min()) < 0 or int(index.max()) >= self.rows):
            raise DataError("batch['rows']", f"holds indices in [{int(index.min())}, "
                            f"{int(index.max())}]; the per-row state was built for "
                            f"{self.rows} training rows (0..{self.rows - 1})")
        return index

    def read(self, index: Tensor, column: int) -> Tensor:
        """``log u`` of rows ``index`` in one direction. Shapes: ``[n]`` -> ``[n]``."""
        return self.log_u[index.to(self.log_u.device), column]

    def write(self, index: Tensor, values: Tensor) -> None:
        """Store new ``log u`` values; NaN (a direction the row took no part in) keeps the old.

        A row listed twice (a batch that straddles two epochs) takes its last value, so the
        result does not depend on the order scatter writes in.

        Shapes:
            index: ``[N]``; values: ``[N, directions]``.
        """
        index = index.to(self.log_u.device)
        values = values.to(self.log_u)
        position = torch.arange(index.numel(), device=index.device)
        last = torch.full((self.rows,), -1, dtype=torch.long, device=index.device)
        last.scatter_reduce_(0, index, position, reduce="amax")
        keep = last[index] == position
        index, values = index[keep], values[keep]
        old = self.log_u[index]
        # Only finite estimates enter: a non-finite step must not poison a row for ever.
        self.log_u[index] = torch.where(torch.isnan(values) | torch.isinf(values), old, values)

    def seen_fraction(self) -> float:
        """The fraction of (row, direction) entries seen at least once."""
        return float(torch.isfinite(self.log_u).double().mean())

    def state_dict(self) -> dict[str, Any]:
        """The table (on the CPU) and its directions, for ``accelerator.save_state``."""
        return {"log_u": self.log_u.detach().cpu().clone(), "directions": list(self.directions)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, after checking it fits this table.

        Raises:
            ArtifactError: the saved table has another shape or other directions (the
                checkpoint comes from another data set or objective configuration).
        """
        log_u = state.get("log_u")
        directions = list(state.get("directions", []))
        if not torch.is_tensor(log_u) or tuple(log_u.shape) != tuple(self.log_u.shape) \
                or directions != self.directions:
            shape = tuple(log_u.shape) if torch.is_tensor(log_u) else None
            raise ArtifactError(
                f"the checkpoint's per-row state has shape {shape} for directions "
                f"{directions}; this run needs {tuple(self.log_u.shape)} for "
                f"{self.directions} (one row per training row): resume with the same "
                "training set and objective parameters")
        self.log_u = log_u.to(device=self.log_u.device, dtype=torch.float64).clone()


@contextlib.contextmanager
def batch_rows(objective: Any, batch: dict[str, Any]) -> Iterator[None]:
    """Hand ``batch["rows"]`` to an objective that uses row indices, for one loss call.

    Objectives without ``use_rows`` are left alone (a no-op).

    Args:
        objective: the model's objective.
        batch: the collated batch (``batch.get("rows")`` may be absent).
    """
    use = getattr(objective, "use_rows", None)
    if use is None:
        yield
        return
    use(batch.get(ROWS_KEY))
    try:
        yield
    finally:
        use(None)
