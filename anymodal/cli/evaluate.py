"""``anymodal eval`` (retrieval and zero-shot metrics) and ``anymodal report`` (plots)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from anymodal.cli.items import MAX_LISTED, load_model
from anymodal.cli.output import POSITIVES_RULES, Table, emit, recall_columns
from anymodal.errors import ConfigError

__all__ = ["add_parsers", "cmd_eval", "cmd_report", "retrieval_table"]

logger = logging.getLogger("anymodal.cli")


def add_parsers(sub: Any) -> None:
    """Add ``eval`` and ``report`` to the ``anymodal`` subparsers."""
    _add_eval(sub)
    p = sub.add_parser(
        "report", help="plots and measures of a training run",
        description="Write report.png/.html/.json: loss and recall curves, recall bars, a "
        "similarity heatmap, a PCA of the embeddings by modality; print alignment and "
        "uniformity.")
    p.add_argument("run_dir", help="a training output folder (metrics.jsonl and model/)")
    p.add_argument("--data", default=None, help="a manifest for the sample batch")
    p.add_argument("--output", "-o", default=None, help="output folder (RUN_DIR/report)")
    p.add_argument("-n", type=int, default=256, help="rows of the sample batch")
    p.add_argument("--json", action="store_true", help="print the measures as JSON")
    p.set_defaults(func=cmd_report)


def _add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="retrieval and zero-shot evaluation of a trained model",
        description="Retrieval metrics (R@k beside chance, median rank, MRR, mAP) per task, "
        "and zero-shot classification (top-1/top-5) with class prompts or labelled "
        "prototypes. Without --tasks, --classes or --prototypes: every single-modality "
        "pair a->b plus all-other-modalities->each, over the modalities the data has.")
    p.add_argument("model", help="a model folder")
    p.add_argument("--data", required=True, help="the evaluation manifest (.jsonl/.csv)")
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks such as 'audio->text,audio+video->text' "
                   "(default: every pair plus all-others->each)")
    p.add_argument("--positives", choices=("source", "label"), default="source",
                   help="correct targets: paired on a row (source) or of the same label")
    p.add_argument("--ks", default="1,5,10", help="the k of recall@k")
    p.add_argument("--classes", help="zero-shot: a file of class names, one per line")
    p.add_argument("--template", default="{}", help="zero-shot prompt, e.g. 'a photo of {}'")
    p.add_argument("--class-modality", default=None,
                   help="the modality the prompts are embedded in (default: text)")
    p.add_argument("--prototypes", default=None, metavar="MODALITY",
                   help="zero-shot with labelled prototypes: the mean embedding per class of "
                   "this modality's items")
    p.add_argument("--prototype-data", default=None, help="the prototypes' manifest")
    p.add_argument("--zero-shot-modalities", default=None,
                   help="comma-separated modalities to classify (default: all others)")
    p.add_argument("--label-column", default="label", help="the manifest column of labels")
    p.add_argument("--batch-size", type=int, default=64, help="items embedded at once")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_eval)


def retrieval_table(title: str, results: Mapping[str, Mapping[str, float]],
                    ks: list[int], positives: str) -> Table:
    """The retrieval metrics of each task, chance beside each R@k, the rule named below.

    Args:
        title: the table's title.
        results: task -> metrics, as :func:`anymodal.retrieval.evaluate_retrieval` returns.
        ks: the k of recall@k shown.
        positives: the positives rule the metrics used (``source`` or ``label``).
    """
    first = next(iter(results.values()), {})
    recall = recall_columns(first, ks)
    columns = [*recall, "MRR", "mAP", "median_rank", "queries"]
    headers = [c.replace("_", " ") for c in columns]
    rows = [[task, *(int(m[c]) if c == "queries" else m[c] for c in columns)]
            for task, m in results.items()]
    notes = [POSITIVES_RULES[positives]]
    if any(c.startswith("chance") for c in columns):
        notes.append("chance R@1: what a random ranking scores (positives / candidates)")
    return Table(title, ["task", *headers], rows, notes)


def _retrieval(args: argparse.Namespace, model: Any, data: Any, ks: list[int]) -> Any:
    from anymodal.retrieval.evaluation import default_tasks, evaluate_retrieval, parse_tasks

    if args.tasks:
        tasks = parse_tasks(args.tasks, model.modalities)
    else:  # every pair a->b plus all-others->b, over the modalities the data has
        present = [m for m in model.modalities if m in data.columns()]
        if len(present) < 2:
            raise ConfigError(f"{args.data}: has {present or 'none'} of the model's modalities "
                              f"{list(model.modalities)}; retrieval needs two")
        tasks = default_tasks(present)
    return evaluate_retrieval(model, data, tasks, ks, args.positives)


def _zero_shot(args: argparse.Namespace, model: Any, data: Any) -> Any:
    from anymodal.retrieval.evaluation import EmbeddedManifest, read_classes, zero_shot

    proto = (EmbeddedManifest(model, args.prototype_data, args.batch_size,
                              label_key=args.label_column) if args.prototype_data else None)
    mods = ([m.strip() for m in args.zero_shot_modalities.split(",")]
            if args.zero_shot_modalities else None)
    return zero_shot(model, data, classes=read_classes(args.classes) if args.classes else None,
                     template=args.template, class_modality=args.class_modality,
                     prototypes=args.prototypes, prototype_data=proto, modalities=mods)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate and print one table per kind of evaluation (or JSON)."""
    from anymodal.retrieval.evaluation import EmbeddedManifest

    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    model = load_model(args.model)
    data = EmbeddedManifest(model, args.data, args.batch_size, label_key=args.label_column)
    out: dict[str, Any] = {"model": args.model, "data": args.data,
                           "positives": args.positives}
    tables = []
    zero = bool(args.classes or args.prototypes)
    if args.tasks or not zero:
        out["retrieval"] = _retrieval(args, model, data, ks)
        tables.append(retrieval_table(f"retrieval on {args.data}", out["retrieval"], ks,
                                      args.positives))
    if zero:
        out["zero_shot"] = _zero_shot(args, model, data)
        tables.append(Table("zero-shot classification",
                            ["modality", "top1", "top5", "items", "classes"],
                            [[m, r["top1"], r["top5"], int(r["items"]), int(r["classes"])]
                             for m, r in out["zero_shot"].items()]))
    out["skipped_items"] = data.failures
    for failure in data.failures[:MAX_LISTED]:
        logger.warning("skipped %s item %s: %s", failure["modality"], failure["source"],
                       failure["reason"])
    emit(out, tables, args.json)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report files and print the measures (or JSON)."""
    from anymodal.retrieval.report import write_report

    report = write_report(args.run_dir, args.output, args.data, args.n)
    m = report.measures
    # The rule the report ranked by (rows from files pair by source, synthetic rows by class).
    positives = m.get("positives") or ("source" if args.data else "label")
    tables = [
        retrieval_table(f"retrieval on the sample batch ({m['rows']} rows)", m["recall"],
                        [1, 5, 10], positives),
        Table("alignment (per pair; lower is better) and modality gap",
              ["pair", "alignment", "centroid distance"],
              [[pair, value, m["modality_gap"][pair]] for pair, value in m["alignment"].items()]),
        Table("uniformity (per modality; lower is better)", ["modality", "uniformity"],
              [[name, value] for name, value in m["uniformity"].items()]),
    ]
    emit({"png": str(report.png), "html": str(report.html), "positives": positives, **m},
         tables, args.json)
    if not args.json:
        print(f"wrote {report.png}\n      {report.html}\n      {report.json}")
    return 0
