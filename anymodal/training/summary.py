"""The one-screen summaries printed at the start and the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import Accelerator
from rich.console import Console
from rich.table import Table

from anymodal.model import MultiModalModel

__all__ = ["print_end", "print_start"]


def _count(module: Any, trainable: bool | None = None) -> int:
    return sum(p.numel() for p in module.parameters()
               if trainable is None or p.requires_grad == trainable)


def print_start(model: MultiModalModel, accelerator: Accelerator, config: Any) -> None:
    console = Console()
    table = Table(title=f"anymodal train: {config.name}", title_justify="left")
    for column in ("modality", "type", "encoder", "params", "trainable", "frozen"):
        table.add_column(column)
    for key, spec in model.modalities.items():
        encoder = model.encoders[key]
        # "partly": LoRA adapters or named trainable layers in an otherwise frozen encoder
        frozen = "yes" if key in model.frozen else (
            "partly" if key in getattr(model, "adapted", ()) else "no")
        table.add_row(key, spec.name, model.encoder_names[key], f"{_count(encoder):,}",
                      f"{_count(encoder, True):,}", frozen)
    console.print(table)
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


def print_end(output_dir: Path, step: int, final: dict[str, float], best: dict[str, float],
              bad_rows: int, seconds: float, data_wait_fraction: float = 0.0) -> None:
    """The table of last and best metrics, where things were written, and how much of the
    step time went to waiting for data (a high fraction means the run is data-bound)."""
    console = Console()
    table = Table(title=f"finished at step {step} in {seconds:.1f} s", title_justify="left")
    table.add_column("metric")
    table.add_column("last", justify="right")
    table.add_column("best", justify="right")
    for key in sorted(set(final) | set(best)):
        last = final.get(key)
        table.add_row(key, "-" if last is None else f"{last:.4f}",
                      f"{best[key]:.4f}" if key in best else "-")
    console.print(table)
    console.print(
        f"model: {output_dir / 'model'}\ncheckpoints: {output_dir / 'checkpoints'}\n"
        f"metrics: {output_dir / 'metrics.jsonl'}\n"
        f"waiting for data: {100 * data_wait_fraction:.0f}% of step time"
        + (" (data-bound: more data.num_workers or a sample cache would help)"
           if data_wait_fraction > 0.3 else "")
        + (f"\nbad rows: {bad_rows} (see {output_dir / 'bad_samples.jsonl'})" if bad_rows else "")
    )
