"""The training loop, in the shape of Accelerate's own examples.

The same code runs as ``anymodal train recipe.yaml`` and under
``accelerate launch [--multi_gpu --num_processes N] -m anymodal train recipe.yaml``. With no
GPU the Accelerator is made with ``cpu=True``, so two processes on a CPU machine train
together over gloo.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import IterableDataset
from tqdm.auto import tqdm

from anymodal.config import load_config
from anymodal.data.build import build_dataloader, build_dataset
from anymodal.data.collate import BAD_KEY, batch_size
from anymodal.data.synthetic import SyntheticDataset
from anymodal.errors import AnymodalError
from anymodal.model import MultiModalModel
from anymodal.plugins import get_plugin_manager
from anymodal.types import IDS_KEY

from .checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from .evaluate import evaluate
from .optim import build_optimizer, build_scheduler
from .signals import StopRequest, catch_stop_signals
from .summary import print_end, print_start
from .tracking import MetricsLog, make_trackers

__all__ = ["TrainResult", "train", "train_from_recipe"]


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)


def train_from_recipe(recipe: str | Path, overrides: Iterable[str] = ()) -> TrainResult:
    """``anymodal train RECIPE key=value...``."""
    return train(load_config(recipe, list(overrides)))


def _make_accelerator(config: DictConfig) -> Accelerator:
    t = config.train
    cpu = (not torch.cuda.is_available()) if t.cpu is None else bool(t.cpu)
    Path(t.output_dir).mkdir(parents=True, exist_ok=True)
    return Accelerator(
        cpu=cpu,
        mixed_precision=t.mixed_precision,
        gradient_accumulation_steps=t.grad_accum,
        log_with=make_trackers(list(config.logging.trackers), t.output_dir, config.name),
        project_dir=t.output_dir,
        # The schedule counts optimiser steps, not processes x steps.
        step_scheduler_with_optimizer=False,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # Frozen parts, the missing embeddings of complete batches, or an objective's
        # unused parameters take no gradient in some steps.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


class _Run:
    """One training run: holds the prepared objects so that the loop reads plainly."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self.output_dir = Path(config.train.output_dir)
        self.accelerator = _make_accelerator(config)
        set_seed(config.train.seed)
        if self.accelerator.device.type == "cpu":
            torch.set_num_threads(_cpu_threads(config, self.accelerator.num_processes))
        if config.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.model = MultiModalModel(config)
        data = config.data
        self.train_set = build_dataset(data.train, self.model.modalities, True, data.on_error,
                                       config.train.seed)
        self.streaming = isinstance(self.train_set, IterableDataset)
        loader = build_dataloader(self.train_set, self.model.modalities, data.batch_size,
                                  shuffle=True, num_workers=data.num_workers,
                                  pin_memory=data.pin_memory, seed=config.train.seed)
        self.val_loader = None
        if data.val is not None:
            self.val_set = build_dataset(data.val, self.model.modalities, False, data.on_error)
            self.val_loader = build_dataloader(self.val_set, self.model.modalities,
                                               data.batch_size, shuffle=False,
                                               num_workers=data.num_workers, drop_last=False)
        optimizer = build_optimizer(self.model, config)
        scheduler = build_scheduler(optimizer, config)
        acc = self.accelerator
        if self.streaming:  # shards are split across processes by the dataset itself
            self.model, self.optimizer, self.scheduler = acc.prepare(self.model, optimizer,
                                                                     scheduler)
            self.train_loader = loader
        else:
            self.model, self.optimizer, loader, self.scheduler = acc.prepare(
                self.model, optimizer, loader, scheduler)
            self.train_loader = loader
        if self.val_loader is not None:
            self.val_loader = acc.prepare(self.val_loader)
        self.raw_model: MultiModalModel = acc.unwrap_model(self.model)
        self.state = TrainerState()
        self.metrics_log = MetricsLog(self.output_dir) if acc.is_main_process else None
        self.bad_path = self.output_dir / "bad_samples.jsonl"
        self.last_finite: float | None = None
        self.nonfinite_run = 0
        self.final_metrics: dict[str, float] = {}

    # -- pieces of the loop ------------------------------------------------------------------

    def resume(self) -> None:
        choice = str(self.config.train.resume)
        # YAML reads a bare `no` as false: both mean "start afresh".
        if choice.lower() in ("no", "false", "none", ""):
            return
        path = latest_checkpoint(self.output_dir) if choice == "auto" else Path(choice)
        if path is None:
            return
        if not path.is_dir():
            raise AnymodalError(f"train.resume: checkpoint {path} does not exist")
        self.state = load_checkpoint(self.accelerator, path)
        self.accelerator.print(f"resumed from {path} at step {self.state.step}")

    def batches(self) -> Iterable[dict[str, Any]]:
        """Batches from where the run stands (epoch and position inside it), forever."""
        if not self.streaming and len(self.train_loader) == 0:
            raise AnymodalError(
                f"the training set has fewer rows ({len(self.train_set)}) than one batch "
                f"per process (data.batch_size={self.config.data.batch_size})")
        # A stream cannot seek: on resume, read past the batches already consumed.
        to_skip = self.state.batches_seen if self.streaming else 0
        stream_epoch, read_any = 0, False
        while True:
            if self.streaming:
                self.train_set.set_epoch(stream_epoch)  # type: ignore[attr-defined]
                loader: Iterable[dict[str, Any]] = self.train_loader
                stream_epoch += 1
            else:
                epoch, skip = divmod(self.state.batches_seen, len(self.train_loader))
                self.train_loader.set_epoch(epoch)
                loader = (self.accelerator.skip_first_batches(self.train_loader, skip)
                          if skip else self.train_loader)
            for batch in loader:
                read_any = True
                if to_skip:
                    to_skip -= 1
                    continue
                yield batch
            if self.streaming and not read_any:
                raise AnymodalError(f"no rows could be read from {self.config.data.train.path}")

    def record_bad_rows(self, batch: dict[str, Any]) -> int:
        bad = batch.get(BAD_KEY, [])
        if bad:
            self.bad_path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND keeps whole lines from several processes apart.
            fd = os.open(self.bad_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                for row in bad:
                    record = {**row.as_record(), "step": self.state.step,
                              "process": self.accelerator.process_index}
                    os.write(fd, (json.dumps(record) + "\n").encode())
            finally:
                os.close(fd)
            for row in bad:
                warnings.warn(f"skipped row {row.index} ({row.id}): {row.reason}", stacklevel=2)
        return len(bad)

    def check_bad_fraction(self) -> None:
        s, limit = self.state, self.config.data.max_bad_fraction
        if s.rows_seen >= self.config.data.batch_size and s.bad_rows > limit * s.rows_seen:
            raise AnymodalError(
                f"{s.bad_rows} of {s.rows_seen} rows failed to load (more than "
                f"data.max_bad_fraction={limit}); see {self.bad_path} for each row and reason"
            )

    def collective(self, *values: float) -> list[float]:
        """Sum small counters over processes (one all-reduce)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(tensor, reduction="sum").tolist()

    def on_nonfinite(self, batch: dict[str, Any]) -> None:
        self.nonfinite_run += 1
        warnings.warn(f"non-finite loss at step {self.state.step + 1}: step skipped", stacklevel=2)
        if self.nonfinite_run >= self.config.train.max_nonfinite:
            raise AnymodalError(
                f"{self.nonfinite_run} non-finite losses in a row; stopped at step "
                f"{self.state.step} (batch ids {batch[IDS_KEY][:8]}...; last finite loss "
                f"{self.last_finite}). Lower optim.lr, or check the data and mixed precision."
            )

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():
            self.raw_model.log_logit_scale.clamp_(max=math.log(self.raw_model.logit_scale_max))

    def log(self, values: dict[str, float]) -> None:
        self.accelerator.log(values, step=self.state.step)
        if self.metrics_log is not None:
            self.metrics_log.write(self.state.step, values)

    def run_eval(self) -> dict[str, float]:
        if self.val_loader is None:
            return {}
        metrics = evaluate(self.raw_model, self.val_loader, self.accelerator,
                           match_labels=isinstance(self.val_set, SyntheticDataset))
        best = self.state.best or {}
        for key, value in metrics.items():
            better = value < best.get(key, math.inf) if key.endswith("loss") else \
                value > best.get(key, -math.inf)
            if better:
                best[key] = value
        self.state.best = best
        self.final_metrics.update(metrics)
        self.log(metrics)
        if self.accelerator.is_main_process:
            get_plugin_manager().pm.hook.anymodal_on_eval_end(
                step=self.state.step, metrics=metrics, state=self)
        return metrics

    def checkpoint(self) -> Path:
        return save_checkpoint(self.accelerator, self.output_dir, self.state,
                               self.config.train.keep)

    # -- the loop ------------------------------------------------------------------------------

    def step_loop(self, stop: StopRequest) -> None:
        acc, t = self.accelerator, self.config.train
        bar = tqdm(total=t.max_steps, initial=self.state.step, unit="step",
                   disable=not (acc.is_main_process and self.config.logging.progress))
        step_ok, window_start, window_samples = True, time.perf_counter(), 0
        for batch in self.batches():
            if self.state.step >= t.max_steps:
                break
            self.state.batches_seen += 1
            rows = batch_size(batch)
            bad, total_rows, too_small = self.collective(
                self.record_bad_rows(batch), rows + len(batch.get(BAD_KEY, [])), rows < 2)
            self.state.bad_rows += int(bad)
            self.state.rows_seen += int(total_rows)
            self.check_bad_fraction()
            if too_small:  # every process skips together, or DDP would wait forever
                continue
            with acc.accumulate(self.model):
                out = self.model(batch, return_loss=True)
                loss = out["loss"]
                (bad_loss,) = self.collective(float(not torch.isfinite(loss.detach())))
                # Every process runs backward (DDP reduces together); a bad loss is zeroed.
                acc.backward(loss if not bad_loss else loss.nan_to_num(0.0) * 0.0)
                step_ok = step_ok and not bad_loss
                if acc.sync_gradients:
                    if step_ok and self.config.optim.grad_clip > 0:
                        acc.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
                    if step_ok:
                        self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
            window_samples += rows * acc.num_processes
            if not acc.sync_gradients:
                continue
            if not step_ok:
                self.on_nonfinite(batch)
                step_ok = True
                continue
            self.nonfinite_run = 0
            self.scheduler.step()
            self.clamp_logit_scale()
            self.state.step += 1
            self.state.samples_seen += window_samples
            loss_value = float(acc.reduce(loss.detach().float(), reduction="mean"))
            self.last_finite = loss_value
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            elapsed = time.perf_counter() - window_start
            values = {"train/loss": loss_value,
                      "train/lr": self.optimizer.param_groups[0]["lr"],
                      "train/logit_scale": float(self.raw_model.logit_scale().detach()),
                      "train/samples_per_s": window_samples / max(elapsed, 1e-9),
                      "train/world_size": acc.num_processes,
                      **{f"train/{k}": float(v.detach()) for k, v in out.items()
                         if k != "loss" and torch.is_tensor(v) and v.numel() == 1}}
            window_start, window_samples = time.perf_counter(), 0
            if self.state.step % t.log_every == 0 or self.state.step == t.max_steps:
                self.log(values)
            if acc.is_main_process:
                get_plugin_manager().pm.hook.anymodal_on_step_end(
                    step=self.state.step, metrics=values, state=self)
            if t.eval_every and self.state.step % t.eval_every == 0:
                self.run_eval()
            if t.checkpoint_every and self.state.step % t.checkpoint_every == 0:
                self.checkpoint()
            (stop_now,) = self.collective(float(stop.requested))
            if stop_now:
                path = self.checkpoint()
                acc.print(f"stopped by a signal at step {self.state.step}; saved {path}")
                bar.close()
                raise SystemExit(130)
        bar.close()


def _cpu_threads(config: DictConfig, processes: int) -> int:
    """Intra-op threads for CPU training: ``train.threads``, or the cores left to each
    process once the DataLoader workers have theirs. Oversubscribed cores make small
    matrix products many times slower (measured: 6 s against 1 s per step on 2 cores)."""
    if config.train.threads:
        return int(config.train.threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, processes) - int(config.data.num_workers))


def train(config: DictConfig) -> TrainResult:
    """Train a model from a validated config; writes ``<train.output_dir>/model`` at the end."""
    started = time.perf_counter()
    run = _Run(config)
    acc = run.accelerator
    acc.init_trackers(config.logging.project,
                      config=_flat(OmegaConf.to_container(config, resolve=True)))
    run.resume()
    if acc.is_main_process:
        print_start(run.raw_model, acc, config)
    try:
        with catch_stop_signals() as stop:
            run.step_loop(stop)
        if not (config.train.eval_every and run.state.step % config.train.eval_every == 0):
            run.run_eval()
        run.checkpoint()
        acc.wait_for_everyone()
        if acc.is_main_process:
            run.raw_model.save_pretrained(run.output_dir / "model")
            print_end(run.output_dir, run.state.step, run.final_metrics, run.state.best or {},
                      run.state.bad_rows, time.perf_counter() - started)
    finally:
        acc.end_training()
    return TrainResult(run.output_dir, run.state.step, run.final_metrics, run.state.best or {})


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"a.b": value}`` with scalar values, for tracker hyper-parameters."""
    flat: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(_flat(value, f"{prefix}{key}."))
    elif isinstance(tree, list):
        flat[prefix[:-1]] = json.dumps(tree)
    else:
        flat[prefix[:-1]] = tree
    return flat
