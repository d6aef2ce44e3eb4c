"""``anymodal report RUN_DIR``: one picture (and an HTML page around it) of a training run.

Panels: training and validation loss from ``metrics.jsonl``; validation recall@1 over
steps; recall@1/5/10 of every ordered modality pair on a sample batch; the similarity
heatmap (the objective's ``score``) of a sample batch; a 2-D PCA of the sample's
embeddings coloured by modality, which shows the *modality gap* (each modality in its own
cone); and Wang & Isola's alignment (per modality pair) and uniformity (per modality).

The sample is the run's own validation data by default (the first ``n`` rows of its
``data.val``), or a manifest given with ``--data``; a model without validation data gets
synthetic rows (each plugin's ``synthesize``, shared labels). Recall is measured as
``anymodal eval`` and training's validation measure it
(:func:`anymodal.retrieval.evaluation.evaluate_retrieval`: the objective's own score, items
identified by source so that repeated captions are one gallery item, ``source`` positives
for rows read from files and ``label`` positives for synthetic rows), with chance R@1
beside it; the page names the rule. Matplotlib draws with its Agg backend through
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


@dataclass
class Sample:
    """The rows a report measures, embedded.

    Attributes:
        embeddings: modality -> ``[n, D]`` (rows that have every modality).
        labels: ``[n]``: class labels, or the row number when there are none.
        keys: modality -> the ``n`` item keys (source identities; equal keys, one item).
        positives: the positives rule for recall (``source`` or ``label``).
        origin: where the rows came from (for the page).
    """

    embeddings: dict[str, Tensor]
    labels: Tensor
    keys: dict[str, list[str]]
    positives: str
    origin: str


@torch.no_grad()
def sample_embeddings(model: MultiModalModel, n: int = 256, data: str | Path | None = None,
                      seed: int = 0) -> tuple[dict[str, Tensor], Tensor]:
    """Matched embeddings of every modality for ``n`` rows, and the positives' labels.

    Args:
        model: the model.
        n: rows.
        data: a manifest (default: synthetic rows).
        seed: the synthetic rows' seed.

    Returns:
        ``({m: [n, D]}, labels [n])``: class labels for synthetic data, the row number for
        a manifest.
    """
    sample = _synthetic_sample(model, n, seed) if data is None else _manifest_sample(model, n, data)
    return sample.embeddings, sample.labels


@torch.no_grad()
def _synthetic_sample(model: MultiModalModel, n: int, seed: int) -> Sample:
    from accelerate.utils import send_to_device

    # One class per row shared by every modality, as the synthetic training data does.
    num_classes = min(max(s.num_classes, 1) for s in model.modalities.values())
    labels = torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    out = {}
    for slot, (key, spec) in enumerate(model.modalities.items()):
        g = torch.Generator().manual_seed(seed * 1009 + slot)
        items = spec.synthesize(n, g, labels)
        out[key] = model.encode(key, send_to_device(spec.collate(items), model.device)).cpu()
    model.train(was_training)
    keys = {m: [str(i) for i in range(n)] for m in out}
    return Sample(out, labels, keys, "label", f"{n} synthetic rows")


@torch.no_grad()
def _manifest_sample(model: MultiModalModel, n: int, data: str | Path) -> Sample:
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
    keys = {m: [_key(r[m]) for r in rows] for m in embedded}
    return Sample(out, torch.arange(len(rows)), keys, "source", f"{len(rows)} rows of {data}")


@torch.no_grad()
def _validation_sample(model: MultiModalModel, n: int) -> Sample | None:
    """The first ``n`` rows of the run's ``data.val`` with every modality, or ``None``."""
    from accelerate.utils import send_to_device

    from anymodal.data.build import build_dataset
    from anymodal.data.collate import BadRow, collate_rows
    from anymodal.data.synthetic import SyntheticDataset

    split = model.config.data.get("val")
    if split is None:
        return None
    dataset = build_dataset(split, model.modalities, False, "skip")
    rows = []
    for index in range(len(dataset)):  # type: ignore[arg-type]
        row = dataset[index]
        if not isinstance(row, BadRow) and set(row["items"]) == set(model.modalities):
            rows.append(row)
        if len(rows) == n:
            break
    if len(rows) < 2:
        return None
    synthetic = isinstance(dataset, SyntheticDataset)
    was_training = model.training
    model.eval()
    batch = send_to_device(collate_rows(rows, model.modalities), model.device)
    out = {m: x.float().cpu() for m, x in model(batch).items()}
    model.train(was_training)
    keys = {m: [str(r.get("keys", {}).get(m, i)) for i, r in enumerate(rows)] for m in out}
    labels = (torch.tensor([r["label"] for r in rows]) if synthetic
              else torch.arange(len(rows)))
    positives = str(model.config.get("eval", {}).get("positives") or
                    ("label" if synthetic else "source"))
    where = split.path or f"synthetic seed {split.seed}"
    return Sample(out, labels, keys, positives, f"{len(rows)} validation rows ({where})")


def measures(model: MultiModalModel, embeddings: dict[str, Tensor], labels: Tensor,
             keys: dict[str, list[str]] | None = None, positives: str = "label"
             ) -> dict[str, Any]:
    """Alignment, uniformity, modality gap and retrieval on a sample, by eval's rule.

    Retrieval is R@1/5/10, MRR, mAP and chance R@1 of the default tasks.

    Args:
        model: the model.
        embeddings: modality -> ``[n, D]``.
        labels: ``[n]`` labels (``label`` positives).
        keys: modality -> item keys (default: every row its own item).
        positives: ``label`` or ``source``.
    """
    from anymodal.retrieval.evaluation import EmbeddedRows, default_tasks, evaluate_retrieval

    names = list(embeddings)
    pair_names = [(a, b) for a, b in permutations(names, 2)]
    present = {m: torch.ones(len(labels), dtype=torch.bool) for m in names}
    rows = EmbeddedRows(embeddings, present, labels, keys, name="the report's sample")
    recall = evaluate_retrieval(model, rows, default_tasks(names), ks=(1, 5, 10),
                                positives=positives)
    return {
        "alignment": {f"{a}-{b}": alignment(embeddings[a], embeddings[b])
                      for a, b in pair_names if a < b},
        "uniformity": {m: uniformity(x) for m, x in embeddings.items()},
        "modality_gap": {f"{a}-{b}": float((embeddings[a].mean(0) - embeddings[b].mean(0))
                                           .norm()) for a, b in pair_names if a < b},
        "recall": recall,
        "positives": positives,
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
        f"<td>{m[k]:.3f}</td>" for k in ("R@1", "chance_R@1", "R@5", "R@10", "MRR", "mAP"))
        + "</tr>"
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
<h2>Retrieval on {html.escape(str(result.get("sample", f"{result['rows']} rows")))}</h2>
<p>Ranked by the objective's own score; positives: {html.escape(result["positives"])}
({"a target paired with the query on some row" if result["positives"] == "source"
  else "any target of the query's class"}); chance is R@1 of a random ranking.</p>
<table><tr><th>task</th><th>R@1</th><th>chance</th><th>R@5</th><th>R@10</th><th>MRR</th>
<th>mAP</th></tr>
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
        data: a manifest for the sample (default: the run's validation data, or synthetic
            rows when it has none).
        n: rows of the sample batch.
        seed: the seed of synthetic sample rows.
    """
    from matplotlib.figure import Figure

    from anymodal.model import load_model

    run = Path(run_dir)
    model_dir = run / "model" if (run / "model").is_dir() else run
    if not (model_dir / "model.safetensors").is_file():
        raise ConfigError(f"{run} has no trained model (expected {run / 'model'})")
    model = load_model(model_dir)
    records = read_metrics(run / "metrics.jsonl")
    sample = (_manifest_sample(model, n, data) if data is not None
              else _validation_sample(model, n) or _synthetic_sample(model, n, seed))
    embeddings, labels = sample.embeddings, sample.labels
    result = measures(model, embeddings, labels, sample.keys, sample.positives)
    result["sample"] = sample.origin
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
