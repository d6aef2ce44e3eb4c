"""What a running training holds.

The public, frozen view given to hooks, and the loop's own mutable parts.

Hooks (``anymodal_on_step_end``, ``anymodal_on_eval_end``) receive a :class:`TrainContext`:
a frozen snapshot taken after the step, so that a plugin can read the model, optimiser and
counters but cannot rebind them under the loop's feet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from omegaconf import DictConfig
    from torch.utils.data import DataLoader, Dataset

    from anymodal.model import MultiModalModel

    from .checkpoint import TrainerState
    from .tracking import MetricsLog

__all__ = ["Run", "TrainContext"]


@dataclass(frozen=True)
class TrainContext:
    """A read-only view of a run at one step, passed to hooks.

    Attributes:
        step: optimiser steps taken so far.
        batches_seen: micro-batches consumed (the position in the data).
        samples_seen: training rows consumed over all processes.
        epoch: the pass over the training data the run is in (0-based).
        config: the resolved recipe.
        accelerator: the run's ``Accelerator``.
        model: the unwrapped :class:`~anymodal.MultiModalModel`.
        optimizer: the (prepared) optimiser.
        scheduler: the learning-rate scheduler.
        output_dir: the run's folder.
        run_id: the identifier recorded in ``<output_dir>/run.json``.
    """

    step: int
    batches_seen: int
    samples_seen: int
    epoch: int
    config: DictConfig
    accelerator: Accelerator
    model: MultiModalModel
    optimizer: torch.optim.Optimizer
    scheduler: Any
    output_dir: Path
    run_id: str


@dataclass
class Run:
    """The loop's mutable parts, built once by :func:`anymodal.training.loop.train`.

    Attributes:
        model: the prepared (possibly DDP-wrapped) model; ``raw_model`` is the module itself.
        train_loader: prepared training batches (a stream is not prepared: it splits itself).
        val_loader: prepared validation batches, or ``None``.
        state: the checkpointed counters (step, data position, bad rows, best metrics).
        pending: micro-batches accumulated since the last optimiser step.
        data_wait: seconds spent waiting for batches since the run (re)started.
        step_time: seconds of training steps since the run (re)started.
    """

    config: DictConfig
    output_dir: Path
    run_id: str
    accelerator: Accelerator
    model: Any
    raw_model: MultiModalModel
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_set: Dataset  # type: ignore[type-arg]
    train_loader: DataLoader  # type: ignore[type-arg]
    streaming: bool
    val_set: Dataset | None  # type: ignore[type-arg]
    val_loader: DataLoader | None  # type: ignore[type-arg]
    state: TrainerState
    metrics_log: MetricsLog | None
    pending: int = 0
    nonfinite_run: int = 0
    last_finite: float | None = None
    data_wait: float = 0.0
    step_time: float = 0.0
    seen_bad: set[int] = field(default_factory=set)
    final_metrics: dict[str, float] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)
    loss_watch: Any = None

    @property
    def epoch(self) -> int:
        """The current pass over a map-style training set (0 for streams)."""
        size = 0 if self.streaming else len(self.train_set)  # type: ignore[arg-type]
        if size == 0:
            return 0
        rows = self.state.batches_seen * self.config.data.batch_size
        return rows * self.accelerator.num_processes // size

    def context(self) -> TrainContext:
        """A frozen snapshot for hooks."""
        s = self.state
        return TrainContext(s.step, s.batches_seen, s.samples_seen, self.epoch, self.config,
                            self.accelerator, self.raw_model, self.optimizer, self.scheduler,
                            self.output_dir, self.run_id)
