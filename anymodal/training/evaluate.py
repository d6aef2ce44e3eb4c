"""Validation during training, by the same rule as ``anymodal eval``.

The validation rows are embedded once (every process its share, gathered), then ranked by
:func:`anymodal.retrieval.evaluation.evaluate_retrieval` with the objective's own score on
the recipe's ``eval.tasks`` (default: every single-modality pair plus all-others -> each),
with the same positives rule (``source``: items identified by their source, so a caption
repeated on many rows is one gallery item; or ``label``). So the R@k printed during
training is the R@k that ``anymodal eval`` prints afterwards for the same model and rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator

from anymodal.data.collate import KEYS_KEY, LABELS_KEY, batch_size
from anymodal.errors import DataError
from anymodal.model import MultiModalModel
from anymodal.retrieval.evaluation import (
    EmbeddedRows,
    default_tasks,
    evaluate_retrieval,
    parse_tasks,
)
from anymodal.types import PRESENT_KEY

__all__ = ["ValidationSet", "evaluate", "gather_validation"]


@dataclass
class ValidationSet:
    """The validation rows embedded, gathered from every process.

    Shapes:
        embeddings ``{m: [N, D]}``; present, keys ``{m: [N]}``; labels ``[N]``.
    """

    loss: float
    embeddings: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    keys: dict[str, torch.Tensor]
    labels: torch.Tensor

    def rows(self) -> EmbeddedRows:
        """The rows as :func:`evaluate_retrieval` reads them.

        Items are named by source key, or by row number where a row has none.
        """
        names = {m: [str(int(code)) if code >= 0 else f"row{i}"
                     for i, code in enumerate(codes.tolist())]
                 for m, codes in self.keys.items()}
        return EmbeddedRows(self.embeddings, self.present, self.labels, names,
                            name="the validation data")


@torch.no_grad()
def gather_validation(model: MultiModalModel, loader: Iterable[Any], accelerator: Accelerator
                      ) -> ValidationSet | None:
    """Embed the validation batches and gather them (every process must call this)."""
    was_training = model.training
    model.eval()
    losses: list[torch.Tensor] = []
    parts: dict[str, dict[str, list[torch.Tensor]]] = {"emb": {}, "present": {}, "keys": {}}
    labels: list[torch.Tensor] = []
    device = accelerator.device
    for batch in loader:
        if batch_size(batch) < 2:
            continue
        losses.append(model.compute_loss(batch)["loss"].detach().float().reshape(1))
        for key, value in model(batch).items():
            parts["emb"].setdefault(key, []).append(value.float())
            parts["present"].setdefault(key, []).append(batch[PRESENT_KEY][key].to(device))
            parts["keys"].setdefault(key, []).append(batch[KEYS_KEY][key].to(device))
        labels.append(batch[LABELS_KEY].to(device))
    model.train(was_training)
    if not losses:
        return None

    def gathered(chunks: list[torch.Tensor]) -> torch.Tensor:
        return accelerator.gather_for_metrics(torch.cat(chunks)).cpu()

    return ValidationSet(
        float(gathered(losses).mean()),
        {k: gathered(v) for k, v in parts["emb"].items()},
        {k: gathered(v).bool() for k, v in parts["present"].items()},
        {k: gathered(v) for k, v in parts["keys"].items()},
        gathered(labels))


def evaluate(model: MultiModalModel, loader: Iterable[Any], accelerator: Accelerator,
             tasks: list[str] | None = None, positives: str = "source"
             ) -> tuple[dict[str, float], ValidationSet | None]:
    """Validation loss and, per task, R@1/5/10, MRR and chance R@1.

    Every process calls this and gets the same numbers.

    Args:
        model: the unwrapped model.
        loader: the prepared validation loader.
        accelerator: the run's accelerator.
        tasks: ``["a->b", "a+b->c"]`` (``None``: the default tasks).
        positives: ``source`` or ``label`` (as ``anymodal eval --positives``).

    Returns:
        ``({"val/loss": ..., "val/a->b/R@1": ..., "val/a->b/chance_R@1": ...}, the set)``.
    """
    data = gather_validation(model, loader, accelerator)
    if data is None:
        return {}, None
    metrics = {"val/loss": data.loss}
    if positives == "label" and bool((data.labels < 0).any()):
        positives = "source"  # rows without labels: only their pairing is known
    rows = data.rows()
    chosen = (parse_tasks(list(tasks), model.modalities) if tasks is not None
              else default_tasks([m for m in model.modalities if m in rows.columns()]))
    for task in chosen:
        try:
            values = evaluate_retrieval(model, rows, [task], ks=(1, 5, 10),
                                        positives=positives)[task.name]
        except DataError:  # no validation row has every modality of this task
            continue
        for name in ("R@1", "R@5", "R@10", "MRR", "chance_R@1"):
            metrics[f"val/{task.name}/{name}"] = float(values[name])
    return metrics, data
