"""``anymodal demo``: train, save, load, index, search and score, end to end.

The demo needs no data file and no media plugin: three built-in ``vector`` modalities
(``a``, ``b``, ``c``: three noisy views of 16 classes) are trained with two objectives, and
the trained models answer single- and two-modality queries against an index of ``c``,
each with its objective's own scoring rule. ``anymodal demo --digits`` is the six-modality
demo that the ``anymodal-datasets`` plugin adds (``anymodal demo-digits``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.cli.output import Table, print_table

if TYPE_CHECKING:
    from anymodal.model import MultiModalModel
    from anymodal.retrieval.index import Index

__all__ = ["add_parsers", "cmd_demo", "demo_overrides", "run_demo"]

OBJECTIVES = ("clip", "symile")
TASKS = (("a",), ("b",), ("a", "b"))
TARGET = "c"


def add_parsers(sub: Any) -> None:
    """Add ``demo`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("demo", help="a small end-to-end run: train, embed, search, report")
    p.add_argument("--output-dir", default="runs/demo", help="where the run is written")
    p.add_argument("--steps", type=int, default=None, help="training steps per objective")
    p.add_argument("--quick", action="store_true", help="the fastest version (for tests)")
    p.add_argument("--digits", action="store_true",
                   help="the six-modality demo on handwritten digits: the same as 'anymodal "
                   "demo-digits' (needs the anymodal-datasets plugin)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the vector demo (``--digits`` is routed to the plugin's command before parsing)."""
    return run_demo(output_dir=args.output_dir, steps=args.steps, quick=args.quick)


def demo_overrides(objective: str, output_dir: Path, steps: int) -> dict[str, Any]:
    """The demo's recipe, as a nested mapping (see ``recipes/smoke_*.yaml`` for YAML ones).

    Args:
        objective: the objective's registry name.
        output_dir: the demo's folder; the run goes to ``output_dir/objective``.
        steps: optimiser steps.
    """
    views = {key: {"modality": "vector", "options": {"view_seed": seed, "noise": 0.8},
                   "params": {"width": 64}}
             for seed, key in enumerate(("a", "b", "c"), start=1)}
    return {
        "name": f"demo_{objective}",
        "modalities": views,
        "model": {"embed_dim": 32},
        "objective": {"name": objective, "params": {}},
        "data": {"train": {"kind": "synthetic", "size": 4096, "seed": 0},
                 "val": {"kind": "synthetic", "size": 256, "seed": 1}, "batch_size": 64},
        "optim": {"lr": 2e-3, "warmup_steps": 10},
        "train": {"max_steps": steps, "output_dir": str(output_dir / objective),
                  "overwrite": True,
                  "eval_every": 0, "checkpoint_every": 0, "log_every": 10},
        "logging": {"trackers": ["csv"], "progress": True},
    }


def _recall(model: MultiModalModel, index: Index, rows: list[dict[str, Any]],
            labels: dict[str, int], keys: tuple[str, ...]) -> tuple[float, float]:
    from anymodal.retrieval.search import search

    queries = [{key: row["items"][key] for key in keys} for row in rows]
    results: list[list[Any]] = search(model, queries, index, k=5)  # type: ignore[assignment]
    top1 = top5 = 0
    for row, hits in zip(rows, results):
        found = [labels[str(hit.id)] == row["label"] for hit in hits]
        top1 += found[0]
        top5 += any(found)
    return top1 / len(rows), top5 / len(rows)


def _train_and_score(objective: str, output_dir: Path, steps: int) -> list[list[Any]]:
    """Train one objective, index ``c`` of 512 held-out rows, score each query set."""
    from anymodal.config import load_config
    from anymodal.data.synthetic import SyntheticDataset
    from anymodal.model import load_model
    from anymodal.retrieval.index import Index
    from anymodal.training import train

    train(load_config(None, demo_overrides(objective, output_dir, steps)))
    model = load_model(output_dir / objective / "model")
    test = SyntheticDataset(model.modalities, 512, seed=7)
    rows = [test[i] for i in range(len(test))]
    labels = {row["id"]: row["label"] for row in rows}
    index = Index.build(model, TARGET, [row["items"][TARGET] for row in rows],
                       ids=[row["id"] for row in rows], progress=False)
    index.save(output_dir / objective / f"index_{TARGET}")
    chance = 1 / test.num_classes
    return [[objective, "+".join(keys) + f" -> {TARGET}", *_recall(model, index, rows, labels,
                                                                    keys),
             chance, 1 - (1 - chance) ** 5] for keys in TASKS]


def run_demo(output_dir: str | Path = "runs/demo", steps: int | None = None,
             quick: bool = False) -> int:
    """Train each demo objective, then print R@1/R@5 of every query set against chance.

    Args:
        output_dir: where the models and indexes go.
        steps: optimiser steps per objective (default 150; 20 with ``quick``).
        quick: the fastest version (for tests).
    """
    output_dir = Path(output_dir)
    steps = steps or (20 if quick else 150)
    rows: list[list[Any]] = []
    for objective in OBJECTIVES:
        print(f"--- training with {objective}", flush=True)
        rows += _train_and_score(objective, output_dir, steps)
    print_table(Table(
        f"retrieval of {TARGET!r} on 512 held-out rows (16 classes)",
        ["objective", "query", "R@1", "chance R@1", "R@5", "chance R@5"], rows,
        notes=["positives: label (a hit has the query's class)",
               "clip sums the query similarities; symile multiplies the query embeddings "
               "elementwise, scoring whole tuples: it is trained on (a, b, c) together, so a "
               "single query modality is not what its score measures, and a+b -> c is.",
               f"models and indexes: {output_dir.resolve()}"],
        key_columns=2))
    return 0
