"""The one-screen summaries printed at the start and the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import Accelerator
from rich.console import Console

from anymodal.model import MultiModalModel

__all__ = ["print_end", "print_start"]


def _count(module: Any, trainable: bool | None = None) -> int:
    return sum(p.numel() for p in module.parameters()
               if trainable is None or p.requires_grad == trainable)


def print_start(model: MultiModalModel, accelerator: Accelerator, config: Any) -> None:
    """Print the modalities, encoders and parameter counts, and the run's set-up."""
    from anymodal.cli.output import Table, print_table

    console = Console()
    rows = []
    for key, spec in model.modalities.items():
        encoder = model.encoders[key]
        # "partly": LoRA adapters or named trainable layers in an otherwise frozen encoder
        frozen = "yes" if key in model.frozen else (
            "partly" if key in getattr(model, "adapted", ()) else "no")
        if key in getattr(model, "bound", ()):  # train.init_from: encoder, head, missing
            frozen = "all (init_from)"
        rows.append([key, spec.name, model.encoder_names[key], f"{_count(encoder):,}",
                     f"{_count(encoder, True):,}", frozen])
    print_table(Table(f"anymodal train: {config.name}",
                      ["modality", "type", "encoder", "params", "trainable", "frozen"], rows))
    if getattr(model, "bound", None):
        scale = "trained" if model.log_logit_scale.requires_grad else "frozen"
        console.print(f"init_from {config.train.init_from}: {', '.join(sorted(model.bound))} "
                      f"frozen (encoders, heads, missing embeddings); logit scale {scale}; "
                      f"trainable params {_count(model, True):,}")
    effective = config.data.batch_size * accelerator.num_processes * config.train.grad_accum
    console.print(
        f"objective [bold]{config.objective.name}[/bold] {dict(config.objective.params)}  |  "
        f"embed_dim {model.embed_dim}  |  total params {_count(model):,}\n"
        f"devices: {accelerator.num_processes} x {accelerator.device.type} "
        f"({accelerator.distributed_type.value})  |  precision {accelerator.mixed_precision}  "
        f"|  effective batch {effective} = {config.data.batch_size} x "
        f"{accelerator.num_processes} processes x {config.train.grad_accum} accumulation\n"
        f"steps {config.train.max_steps}  |  output {config.train.output_dir}"
    )


def _split_retrieval(metrics: dict[str, float]) -> tuple[dict[str, dict[str, float]],
                                                          dict[str, float]]:
    """``val/<task>/<metric>`` keys grouped by task, and every other key."""
    tasks: dict[str, dict[str, float]] = {}
    rest: dict[str, float] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "val" and "->" in parts[1]:
            tasks.setdefault(parts[1], {})[parts[2]] = value
        else:
            rest[key] = value
    return tasks, rest


def _print_retrieval(final: dict[str, float], best: dict[str, float],
                     positives: str | None) -> set[str]:
    """The last validation retrieval of every task, chance beside R@1; the keys it showed."""
    from anymodal.cli.output import POSITIVES_RULES, Table, print_table, recall_columns

    tasks, _ = _split_retrieval(final)
    if not tasks:
        return set()
    first = next(iter(tasks.values()))
    columns = [c for c in (*recall_columns(first, [1, 5, 10]), "MRR") if c in first]
    rows = [[task, *(m.get(c) for c in columns), best.get(f"val/{task}/R@1")]
            for task, m in tasks.items()]
    notes = [POSITIVES_RULES.get(positives or "", f"positives: {positives or 'see eval'}"),
             "chance R@1: what a random ranking scores; best: the best R@1 of the run"]
    print_table(Table("validation retrieval (last evaluation)",
                      ["task", *(c.replace("_", " ") for c in columns), "best R@1"], rows, notes))
    return {f"val/{task}/{c}" for task in tasks for c in columns}


def print_end(output_dir: Path, step: int, final: dict[str, float], best: dict[str, float],
              bad_rows: int, seconds: float, data_wait_fraction: float = 0.0,
              positives: str | None = None) -> None:
    """Print the last and best metrics, where things were written, and the data wait.

    A high fraction of step time spent waiting for data means the run is data-bound.
    Validation retrieval gets its own table (one row per task, chance R@1 beside R@1,
    the positives rule named).

    Args:
        output_dir: the run's folder.
        step: the last optimiser step.
        final: the last value of each metric.
        best: the best value of each metric.
        bad_rows: rows that failed to load.
        seconds: the run's wall time.
        data_wait_fraction: the fraction of step time spent waiting for data.
        positives: the positives rule of validation (``source`` or ``label``).
    """
    from anymodal.cli.output import Table, print_table

    console = Console()
    shown = _print_retrieval(final, best, positives)
    rows = [[key, final.get(key), best.get(key)]
            for key in sorted((set(final) | set(best)) - shown)]
    title = f"finished at step {step} in {seconds:.1f} s"
    if rows:  # a run without validation data has no metric to show
        print_table(Table(title, ["metric", "last", "best"], rows))
    else:
        console.print(title)
    console.print(
        f"model: {output_dir / 'model'}\ncheckpoints: {output_dir / 'checkpoints'}\n"
        f"metrics: {output_dir / 'metrics.jsonl'}\n"
        f"waiting for data: {100 * data_wait_fraction:.0f}% of step time"
        + (" (data-bound: more data.num_workers or a sample cache would help)"
           if data_wait_fraction > 0.3 else "")
        + (f"\nbad rows: {bad_rows} (see {output_dir / 'bad_samples.jsonl'})" if bad_rows else "")
    )
