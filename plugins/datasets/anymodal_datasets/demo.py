"""``anymodal demo --digits`` (``anymodal demo-digits``): the six-modality digits demo.

It builds the ``digits`` data set (PNG, spoken WAV, mp4, PLY, PyG graph and a caption per
digit), trains the recipe shipped in this package (``recipes/digits_clip.yaml``, package
data, so it works from a wheel as from a checkout) on the train split, prints retrieval on
the test split beside chance (a target is correct when it shows the query's digit), and
writes the report PNG. The table has single-modality queries, a two-modality query and the
all-other-modalities query, each ranked by the objective's own score.

Why pairwise CLIP and not a higher-order objective: with six modalities, Symile's product
of six unit vectors is of order D^(1 - M/2) at initialisation and does not train in this
budget (every modality collapses), and GRAM trains image, video and graph but collapses
audio, point cloud and text (measured, see BENCHMARKS.md). ``--recipe`` trains
``digits_symile.yaml`` (or any recipe) instead.

Importing this module stays cheap: the command imports torch and the core when it runs.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

from anymodal import CommandSpec, hookimpl

__all__ = ["DIGITS_TASKS", "RECIPE", "anymodal_register_commands", "run_digits_demo"]

DIGITS_TASKS = (
    "text->image", "audio->image", "image->pointcloud", "graph->text", "video->image",
    "video+audio->text", "audio+video+pointcloud+graph+text->image",
)
RECIPE = "digits_clip.yaml"


def recipe_path(name: str = RECIPE) -> Path:
    """The path of a recipe shipped as package data of ``anymodal_datasets``."""
    return Path(str(resources.files("anymodal_datasets") / "recipes" / name))


def _overrides(data_dir: Path, output_dir: Path, limit: int | None, steps: int | None
               ) -> list[str]:
    overrides = [f"data.train.path={data_dir / 'train.jsonl'}",
                 f"data.val.path={data_dir / 'val.jsonl'}", f"train.output_dir={output_dir}",
                 "train.overwrite=true", "train.resume=no", "train.checkpoint_every=0",
                 # the table below is the evaluation: none during training
                 "train.eval_every=0"]
    if steps:
        overrides.append(f"train.max_steps={steps}")
    if limit:  # 8 of every 10 digits are training rows: keep at least two batches
        overrides.append(f"data.batch_size={max(2, min(64, (limit * 8 // 10) // 2))}")
    return overrides


def _print_results(results: dict[str, dict[str, float]], objective: str) -> None:
    from anymodal.cli.output import POSITIVES_RULES, Table, print_table

    rows = [[task, int(m["queries"]), m["R@1"], m["chance_R@1"], m["R@5"], m["mAP"]]
            for task, m in results.items()]
    print_table(Table(f"test split: a hit shows the query's digit ({objective}'s own scoring)",
                      ["task", "queries", "R@1", "chance R@1", "R@5", "mAP"], rows,
                      notes=[POSITIVES_RULES["label"]]))


def run_digits_demo(output_dir: str | Path = "runs/demo_digits",
                    data_dir: str | Path = "data/digits", limit: int | None = None,
                    steps: int | None = None, recipe: str | Path | None = None) -> int:
    """Build (or reuse) the digits data, train, evaluate, report; print where things are.

    Args:
        output_dir: the training run's folder.
        data_dir: where the data set is built (reused when complete).
        limit: build only this many digits (a quick run).
        steps: optimiser steps (default: the recipe's).
        recipe: a recipe to train instead of the packaged one.
    """
    from anymodal.config import load_config
    from anymodal.errors import ConfigError
    from anymodal.model import load_model
    from anymodal.plugin_host.manager import build_dataset_files
    from anymodal.retrieval.evaluation import evaluate_retrieval
    from anymodal.retrieval.report import write_report
    from anymodal.training import train

    recipe = Path(recipe) if recipe is not None else recipe_path()
    if not recipe.is_file():
        raise ConfigError(f"the digits demo's recipe {recipe} is missing")
    print("--- building the digits data set (cached after the first run)", flush=True)
    build_dataset_files("digits", data_dir, **({"limit": limit} if limit else {}))
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    config = load_config(recipe, _overrides(data_dir, output_dir, limit, steps))
    objective = str(config.objective.name)
    print(f"--- training six modalities with {objective}", flush=True)
    train(config)
    model = load_model(output_dir / "model")
    print("--- retrieval on the test split", flush=True)
    results = evaluate_retrieval(model, data_dir / "test.jsonl", ",".join(DIGITS_TASKS),
                                 ks=(1, 5), positives="label")
    _print_results(results, objective)
    report = write_report(output_dir, data=data_dir / "test.jsonl")
    print(f"report: {report.png}\nmodel: {output_dir / 'model'}")
    return 0


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", default="runs/demo_digits", help="where the run is written")
    p.add_argument("--data-dir", default="data/digits", help="where the data set is built")
    p.add_argument("--limit", type=int, default=None, help="build only the first N digits")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: recipe)")
    p.add_argument("--recipe", default=None,
                   help=f"train this recipe instead of the packaged {RECIPE}")


def _run(args: argparse.Namespace) -> int:
    return run_digits_demo(output_dir=args.output_dir, data_dir=args.data_dir,
                           limit=args.limit, steps=args.steps, recipe=args.recipe)


@hookimpl
def anymodal_register_commands(register: Any) -> None:
    """The ``demo-digits`` command (``anymodal demo --digits`` is routed to it)."""
    register(CommandSpec(
        "demo-digits", _run, _configure,
        help="the six-modality demo on handwritten digits (build, train, evaluate, report)",
        description="Build the digits data set (image, speech, video, point cloud, graph and "
        "caption per digit; cached), train the packaged recipe digits_clip.yaml on its "
        "train split, print test retrieval beside chance (a hit shows the query's digit) "
        "and write the report PNG. 'anymodal demo --digits' is the same command."))
