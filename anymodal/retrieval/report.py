"""``anymodal report RUN_DIR``: one picture (and an HTML page around it) of a training run.

Panels: training and validation loss from ``metrics.jsonl``; validation recall@1 over
steps; recall@1/5/10 of every ordered modality pair on a sample batch; the similarity
heatmap (the objective's ``score``) of a sample batch; a 2-D PCA of the sample's
embeddings coloured by modality, which shows the *modality gap* (each modality in its own
cone); and Wang & Isola's alignment (per modality pair) and uniformity (per modality).

The sample batch is synthetic (each plugin's ``synthesize``, shared labels, so a row's
positives are the rows of its class) unless a manifest is given (then row ``i`` of one
modality matches row ``i`` of another). Matplotlib draws with its Agg backend through
``matplotlib.figure.Figure``: no display and no global pyplot state.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from anymodal.errors import ConfigError, DataError
from anymodal.retrieval.metrics import (
    alignment,
    positives_from_labels,
    retrieval_metrics,
    uniformity,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from anymodal.model import MultiModalModel

__all__ = ["Report", "measures", "read_metrics", "sample_embeddings", "write_report"]


@dataclass
class Report:
    """What :func:`write_report` wrote and measured."""

    png: Path
    html: Path
    json: Path
    measures: dict[str, Any] = field(default_factory=dict)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a damaged line is an error naming it)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}", f"not valid JSON ({exc.msg})") from None
    return records


@torch.no_grad()
def sample_embeddings(model: MultiModalModel, n: int = 256, data: str | Path | None = None,
                      seed: int = 0) -> tuple[dict[str, Tensor], Tensor]:
    """Matched embeddings of every modality for ``n`` rows, and the positives' labels.

    Returns:
        ``({m: [n, D]}, labels [n])``: rows with equal labels are each other's positives
        (class labels for synthetic data, the row number for a manifest).
    """
    if data is None:
        from accelerate.utils import send_to_device

        # One class per row shared by every modality, as the synthetic training data does.
        num_classes = min(max(s.num_classes, 1) for s in model.modalities.values())
        labels = torch.randint(0, num_classes, (n,),
                               generator=torch.Generator().manual_seed(seed))
        was_training = model.training
        model.eval()
        out = {}
        for slot, (key, spec) in enumerate(model.modalities.items()):
            g = torch.Generator().manual_seed(seed * 1009 + slot)
            items = spec.synthesize(n, g, labels)
            out[key] = model.encode(key, send_to_device(spec.collate(items), model.device)).cpu()
        model.train(was_training)
        return out, labels
    from anymodal.retrieval.evaluation import EmbeddedManifest, _key

    manifest = EmbeddedManifest(model, data)
    embedded = {m: manifest.embedded(m) for m in model.modalities if m in manifest.columns()}
    rows = [row for row in manifest.rows
            if all(row.get(m) is not None and _key(row[m]) in embedded[m] for m in embedded)]
    rows = rows[:n]
    if len(rows) < 2 or len(embedded) < 1:
        raise DataError(data, "the report needs at least two rows with every modality "
                        f"of the model ({sorted(model.modalities)})")
    out = {m: torch.stack([embedded[m][_key(r[m])] for r in rows]) for m in embedded}
    return out, torch.arange(len(rows))


def measures(model: MultiModalModel, embeddings: dict[str, Tensor], labels: Tensor
             ) -> dict[str, Any]:
    """Alignment per pair, uniformity per modality, the gap between modality centroids,
    and recall@1/5/10 of every ordered pair, on a sample batch."""
    names = list(embeddings)
    pair_names = [(a, b) for a, b in permutations(names, 2)]
    positives = positives_from_labels(labels, labels)
    recall = {}
    for a, b in pair_names:
        scores = model.score({a: embeddings[a].to(model.device)},
                             embeddings[b].to(model.device), target=b).float().cpu()
        recall[f"{a}->{b}"] = retrieval_metrics(scores, positives)
    return {
        "alignment": {f"{a}-{b}": alignment(embeddings[a], embeddings[b])
                      for a, b in pair_names if a < b},
        "uniformity": {m: uniformity(x) for m, x in embeddings.items()},
        "modality_gap": {f"{a}-{b}": float((embeddings[a].mean(0) - embeddings[b].mean(0))
                                           .norm()) for a, b in pair_names if a < b},
        "recall": recall,
        "rows": len(labels),
    }


def _plot_curves(ax: Axes, records: list[dict[str, Any]], wanted: Callable[[str], bool],
                 title: str, limit: int = 8) -> None:
    keys = sorted({k for r in records for k in r if k not in ("step", "time") and wanted(k)})
    if len(keys) > limit:
        # Six modalities make 30 pairs: a legend that large hides the plot. Keep the
        # series with the best last value, and say so in the title.
        last = {k: next(r[k] for r in reversed(records) if k in r) for k in keys}
        title = f"{title} (best {limit} of {len(keys)})"
        keys = sorted(sorted(keys, key=lambda k: -float(last[k]))[:limit])
    for key in keys:
        points = [(r["step"], r[key]) for r in records if key in r and "step" in r]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="." if len(points) < 30 else None, label=key)
    ax.set_title(title)
    ax.set_xlabel("step")
    if keys:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no records", ha="center", va="center", transform=ax.transAxes)


def _plot_recall(ax: Axes, recall: dict[str, dict[str, float]]) -> None:
    tasks = list(recall)
    width = 0.25
    for i, k in enumerate(("R@1", "R@5", "R@10")):
        xs = [t + (i - 1) * width for t in range(len(tasks))]
        ax.bar(xs, [recall[t][k] for t in tasks], width, label=k)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title("recall@k on the sample batch")
    ax.legend(fontsize=7)


def _plot_heatmap(ax: Axes, model: MultiModalModel, embeddings: dict[str, Tensor],
                  labels: Tensor, size: int = 32) -> None:
    names = list(embeddings)
    a, b = (names[0], names[1]) if len(names) > 1 else (names[0], names[0])
    # Rows sorted by label: matching rows form blocks on the diagonal.
    order = labels[:size].argsort(stable=True)
    scores = model.score({a: embeddings[a][:size][order].to(model.device)},
                         embeddings[b][:size][order].to(model.device), target=b).float().cpu()
    image = ax.imshow(scores.numpy(), cmap="viridis", aspect="auto")
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(f"score({a} → {b}), {scores.shape[0]} rows sorted by label")
    ax.set_xlabel(b)
    ax.set_ylabel(a)


def _plot_pca(ax: Axes, embeddings: dict[str, Tensor]) -> None:
    stacked = torch.cat(list(embeddings.values())).double()
    centred = stacked - stacked.mean(0)
    # The top two right singular vectors of the centred cloud are its principal axes.
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    projected = (centred @ vh[:2].T).float()
    start = 0
    for name, x in embeddings.items():
        part = projected[start:start + len(x)]
        ax.scatter(part[:, 0].numpy(), part[:, 1].numpy(), s=6, alpha=0.6, label=name)
        start += len(x)
    ax.set_title("PCA of the embeddings (modality gap)")
    ax.legend(fontsize=7, markerscale=2)


def _plot_measures(ax: Axes, result: dict[str, Any]) -> None:
    labels = [f"align {k}" for k in result["alignment"]] + \
        [f"unif {k}" for k in result["uniformity"]]
    values = list(result["alignment"].values()) + list(result["uniformity"].values())
    colours = ["tab:blue"] * len(result["alignment"]) + ["tab:orange"] * len(result["uniformity"])
    ax.barh(range(len(values)), values, color=colours)
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_title("alignment (lower better) / uniformity (lower better)")


def _html(title: str, png: Path, result: dict[str, Any]) -> str:
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    rows = "".join(f"<tr><td>{html.escape(task)}</td>" + "".join(
        f"<td>{m[k]:.3f}</td>" for k in ("R@1", "R@5", "R@10", "MRR", "mAP")) + "</tr>"
        for task, m in result["recall"].items())
    measures_rows = "".join(
        f"<tr><td>{html.escape(kind)}</td><td>{html.escape(key)}</td><td>{value:.4f}</td></tr>"
        for kind in ("alignment", "uniformity", "modality_gap")
        for key, value in result[kind].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head>
<body><h1>{html.escape(title)}</h1>
<img src="data:image/png;base64,{encoded}" style="max-width:100%">
<h2>Recall on the sample batch ({result["rows"]} rows)</h2>
<table><tr><th>task</th><th>R@1</th><th>R@5</th><th>R@10</th><th>MRR</th><th>mAP</th></tr>
{rows}</table>
<h2>Alignment, uniformity and modality gap</h2>
<table><tr><th>measure</th><th>of</th><th>value</th></tr>{measures_rows}</table>
</body></html>
"""


def write_report(run_dir: str | Path, output_dir: str | Path | None = None,
                 data: str | Path | None = None, n: int = 256, seed: int = 0) -> Report:
    """Write ``report.png``, ``report.html`` and ``report.json`` for a run.

    Args:
        run_dir: a training output folder (``metrics.jsonl`` and ``model/``), or a model
            folder itself (no curves then).
        output_dir: where to write (default ``<run_dir>/report``).
        data: a manifest for the sample batch (default: synthetic data).
        n: rows of the sample batch.
    """
    from matplotlib.figure import Figure

    from anymodal.model import load_model

    run = Path(run_dir)
    model_dir = run / "model" if (run / "model").is_dir() else run
    if not (model_dir / "model.safetensors").is_file():
        raise ConfigError(f"{run} has no trained model (expected {run / 'model'})")
    model = load_model(model_dir)
    records = read_metrics(run / "metrics.jsonl")
    embeddings, labels = sample_embeddings(model, n, data, seed)
    result = measures(model, embeddings, labels)
    out = Path(output_dir) if output_dir is not None else run / "report"
    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(16, 9), layout="constrained")
    axes = fig.subplots(2, 3)
    _plot_curves(axes[0, 0], records, lambda k: k in ("train/loss", "val/loss"),
                 "training and validation loss")
    _plot_curves(axes[0, 1], records, lambda k: k.startswith("val/") and k.endswith("R@1"),
                 "validation recall@1")
    _plot_recall(axes[0, 2], result["recall"])
    _plot_heatmap(axes[1, 0], model, embeddings, labels)
    _plot_pca(axes[1, 1], embeddings)
    _plot_measures(axes[1, 2], result)
    title = f"anymodal report: {run.resolve().name} ({model.config.objective.name})"
    fig.suptitle(title)
    png = out / "report.png"
    fig.savefig(png, dpi=100)
    page = out / "report.html"
    page.write_text(_html(title, png, result), encoding="utf-8")
    data_file = out / "report.json"
    data_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return Report(png, page, data_file, result)
