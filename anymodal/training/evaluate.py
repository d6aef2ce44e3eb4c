"""Validation during training: mean loss and recall@1/5 for every ordered modality pair."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from accelerate import Accelerator

from anymodal.data.collate import LABELS_KEY, batch_size
from anymodal.model import MultiModalModel
from anymodal.retrieval.metrics import positives_from_labels, recall_at_k
from anymodal.types import PRESENT_KEY

__all__ = ["evaluate", "pair_recall"]


def pair_recall(queries: torch.Tensor, targets: torch.Tensor, ks: Iterable[int] = (1, 5),
                labels: torch.Tensor | None = None) -> dict[int, float]:
    """Recall@k of row i of ``queries`` finding row i of ``targets`` (or, when ``labels``
    are given, any target of the same label) by inner product; ties count against the
    query, as in :mod:`anymodal.retrieval.metrics`.

    Shapes:
        queries, targets ``[N, D]``; labels ``[N]``.
    """
    scores = queries.float() @ targets.float().T
    if labels is None:
        positives = torch.eye(len(queries), dtype=torch.bool)
    else:
        positives = positives_from_labels(labels, labels)
    return recall_at_k(scores, positives, ks)


@torch.no_grad()
def evaluate(model: MultiModalModel, loader: Iterable[Any], accelerator: Accelerator,
             match_labels: bool = False) -> dict[str, float]:
    """Run the validation set; every process must call this (metrics are gathered)."""
    was_training = model.training
    model.eval()
    losses: list[torch.Tensor] = []
    embeddings: dict[str, list[torch.Tensor]] = {}
    present: dict[str, list[torch.Tensor]] = {}
    labels: list[torch.Tensor] = []
    for batch in loader:
        if batch_size(batch) < 2:
            continue
        out = model.compute_loss(batch)
        losses.append(out["loss"].detach().float().reshape(1))
        for key, value in model(batch).items():
            embeddings.setdefault(key, []).append(value.float())
            present.setdefault(key, []).append(batch[PRESENT_KEY][key].to(value.device))
        labels.append(batch[LABELS_KEY].to(accelerator.device))
    model.train(was_training)
    metrics: dict[str, float] = {}
    if not losses:
        return metrics
    metrics["val/loss"] = float(accelerator.gather_for_metrics(torch.cat(losses)).mean())
    emb = {k: accelerator.gather_for_metrics(torch.cat(v)).cpu() for k, v in embeddings.items()}
    mask = {k: accelerator.gather_for_metrics(torch.cat(v)).cpu() for k, v in present.items()}
    all_labels = accelerator.gather_for_metrics(torch.cat(labels)).cpu()
    use_labels = match_labels and bool((all_labels >= 0).all())
    for a in emb:
        for b in emb:
            if a == b:
                continue
            rows = mask[a] & mask[b]
            if int(rows.sum()) < 2:
                continue
            recall = pair_recall(emb[a][rows], emb[b][rows],
                                 labels=all_labels[rows] if use_labels else None)
            for k, value in recall.items():
                metrics[f"val/{a}->{b}/R@{k}"] = value
    return metrics
