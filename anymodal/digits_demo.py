"""``anymodal demo --digits``: the six-modality demo on scikit-learn's handwritten digits.

It builds the ``digits`` data set (plugin ``anymodal-datasets``: PNG, spoken WAV, mp4, PLY,
PyG graph and a caption per digit), trains ``recipes/digits_symile.yaml`` on the train split,
prints retrieval on the test split beside chance (a target is correct when it shows the
query's digit), and writes the report PNG. Symile scores a tuple by the product of its
members, so the table has single-modality queries and the all-other-modalities query.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from anymodal.config import load_config
from anymodal.errors import ConfigError
from anymodal.model import load_model
from anymodal.plugins import build_dataset_files
from anymodal.retrieval.evaluation import evaluate_retrieval
from anymodal.retrieval.report import write_report
from anymodal.training import train

__all__ = ["DIGITS_TASKS", "run_digits_demo"]

DIGITS_TASKS = (
    "text->image", "audio->image", "image->pointcloud", "graph->text", "video->image",
    "video+audio->text", "audio+video+pointcloud+graph+text->image",
)
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "digits_symile.yaml"


def run_digits_demo(output_dir: str | Path = "runs/demo_digits",
                    data_dir: str | Path = "data/digits", limit: int | None = None,
                    steps: int | None = None, recipe: str | Path = RECIPE) -> int:
    """Build (or reuse) the digits data, train, evaluate, report; print where things are."""
    console = Console()
    recipe = Path(recipe)
    if not recipe.is_file():
        raise ConfigError(f"the digits demo needs {recipe} (run it from a source checkout)")
    console.rule("building the digits data set (cached after the first run)")
    build_dataset_files("digits", data_dir, **({"limit": limit} if limit else {}))
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    overrides = [f"data.train.path={data_dir / 'train.jsonl'}",
                 f"data.val.path={data_dir / 'val.jsonl'}", f"train.output_dir={output_dir}",
                 "train.resume=no", "train.checkpoint_every=0"]
    if steps:
        overrides += [f"train.max_steps={steps}", f"train.eval_every={steps}"]
    if limit:  # 8 of every 10 digits are training rows: keep at least two batches
        overrides.append(f"data.batch_size={max(2, min(64, (limit * 8 // 10) // 2))}")
    console.rule("training six modalities with symile")
    train(load_config(recipe, overrides))
    model = load_model(output_dir / "model")
    console.rule("retrieval on the test split")
    results = evaluate_retrieval(model, data_dir / "test.jsonl", ",".join(DIGITS_TASKS),
                                 ks=(1, 5), positives="label")
    table = Table(title="test split: a hit shows the query's digit (symile's own scoring)")
    for column in ("task", "queries", "R@1", "R@5", "mAP", "chance R@1"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task, m in results.items():
        table.add_row(task, f"{m['queries']:.0f}", f"{m['R@1']:.3f}", f"{m['R@5']:.3f}",
                      f"{m['mAP']:.3f}", f"{m['chance_R@1']:.3f}")
    console.print(table)
    report = write_report(output_dir, data=data_dir / "test.jsonl")
    console.print(f"report: {report.png}\nmodel: {output_dir / 'model'}")
    return 0
