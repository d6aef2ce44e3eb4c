"""The training loop, in the shape of Accelerate's own examples.

:func:`train` reads top to bottom as numbered steps: build, prepare, resume, then for each
batch accumulate / backward / step, and log / evaluate / checkpoint. Each policy (bad rows,
the non-finite guard, the logit-scale clamp, stop signals) is one small helper called once
(:mod:`anymodal.training.policies`). The same code runs as ``anymodal train recipe.yaml`` and
under ``accelerate launch [--multi_gpu --num_processes N] -m anymodal train recipe.yaml``;
with no GPU the Accelerator is made with ``cpu=True``, so two processes on a CPU machine
train together over gloo.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import (
    Accelerator,
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    PartialState,
)
from accelerate.utils import broadcast_object_list, set_seed
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import IterableDataset

from anymodal.config import load_config
from anymodal.data.build import build_dataloader, build_dataset, default_num_workers
from anymodal.data.collate import BadRow
from anymodal.data.feature_cache import with_feature_cache
from anymodal.data.guard import NONFINITE_KEY, nonfinite_bad_rows
from anymodal.data.sample_cache import with_sample_cache
from anymodal.data.subsets import ModalityDropout
from anymodal.errors import AnymodalError
from anymodal.model import MultiModalModel
from anymodal.plugin_host.manager import get_plugin_manager
from anymodal.utils.progress import progress_bar

from .batches import training_batches
from .checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from .collapse import LossWatch, collapsed_modalities
from .context import Run, TrainContext
from .evaluate import evaluate
from .generators import ModuleGenerators
from .gradcache import GradCache
from .init_from import check_init_from, initial_model
from .optim import build_optimizer, build_scheduler
from .policies import (
    agree_before_step,
    check_bad_fraction,
    clamp_logit_scale,
    guard_loss,
    known_bad_rows,
    on_nonfinite,
)
from .rundir import OutputLock, RunRecord, claim_output_dir, withdraw_claim
from .signals import StopRequest, catch_stop_signals
from .summary import print_end, print_start
from .tracking import MetricsLog, make_trackers

logger = logging.getLogger("anymodal.training")

__all__ = ["TrainContext", "TrainResult", "forward_backward", "modality_dropout", "train",
           "train_from_recipe"]


@dataclass
class TrainResult:
    """What a finished run produced.

    Attributes:
        output_dir: the run's folder (``model/``, ``checkpoints/``, ``metrics.jsonl``).
        step: optimiser steps taken.
        metrics: the last evaluation's metrics.
        best: the best value of each metric over the run.
        stopped: the run was stopped by SIGINT/SIGTERM (a checkpoint was saved; the command
            line exits with status 130).
        data_wait_fraction: the fraction of training time spent waiting for batches.
    """

    output_dir: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    stopped: bool = False
    data_wait_fraction: float = 0.0


def train_from_recipe(recipe: str | Path, overrides: Iterable[str] = ()) -> TrainResult:
    """``anymodal train RECIPE key=value...``."""
    return train(load_config(recipe, list(overrides)))


def train(config: DictConfig) -> TrainResult:
    """Train a model from a validated config; writes ``<train.output_dir>/model`` at the end.

    Args:
        config: a recipe from :func:`anymodal.config.load_config`.

    Returns:
        A :class:`TrainResult`; ``stopped`` is true when a signal ended the run early.
    """
    started = time.perf_counter()
    check_init_from(config)  # its mistakes refused before the output folder is claimed
    # 0. Own the output folder: its lock, this run's id, no other run's files adopted.
    record, lock = _claim_output_dir(config)
    try:
        # 1. Build the accelerator, the model, the data and the optimiser, and prepare them.
        run = _build(config, record.run_id)
    except BaseException:
        if lock is not None:  # the main process: a run that never started leaves no record
            withdraw_claim(Path(config.train.output_dir), record.run_id)
            lock.release()
        raise
    acc = run.accelerator
    try:
        acc.init_trackers(config.logging.project,
                          config=_flat(OmegaConf.to_container(config, resolve=True)))
        # 2. Resume: model, optimiser, scheduler, RNG states and data position.
        _resume(run)
        if acc.is_main_process:
            print_start(run.raw_model, acc, config)
        # 3. The steps (returns early, with a checkpoint, on SIGINT/SIGTERM).
        with catch_stop_signals() as stop:
            stopped = _train_steps(run, stop)
        # 4. Finish: a last evaluation and checkpoint, then the model folder.
        if not stopped:
            _finish(run, time.perf_counter() - started)
    finally:
        acc.end_training()
        if lock is not None:
            lock.release()
    return TrainResult(run.output_dir, run.state.step, run.final_metrics, run.state.best or {},
                       stopped, _wait_fraction(run))


# -- 0. the output folder -----------------------------------------------------------------------


def _use_cpu(config: DictConfig) -> bool:
    return (not torch.cuda.is_available()) if config.train.cpu is None else bool(config.train.cpu)


def _resuming(config: DictConfig) -> bool:
    # YAML reads a bare `no` as false: both mean "start afresh".
    return str(config.train.resume).lower() not in ("no", "false", "none", "")


def _claim_output_dir(config: DictConfig) -> tuple[RunRecord, OutputLock | None]:
    """The main process locks the folder and records the run; every process learns how.

    A refusal is raised on every process, so that no process waits for the others.
    """
    state = PartialState(cpu=_use_cpu(config))
    lock: OutputLock | None = None
    outcome: RunRecord | AnymodalError | None = None
    if state.is_main_process:
        lock = OutputLock(Path(config.train.output_dir))
        try:
            lock.acquire()
            outcome = claim_output_dir(config, _resuming(config))
        except AnymodalError as exc:
            lock.release()
            lock, outcome = None, exc
    if state.num_processes > 1:
        shared = [outcome]
        broadcast_object_list(shared)
        outcome = shared[0]
    if isinstance(outcome, BaseException):
        raise outcome
    assert isinstance(outcome, RunRecord)
    return outcome, lock


# -- 1. build ---------------------------------------------------------------------------------


def _make_accelerator(config: DictConfig) -> Accelerator:
    t = config.train
    cpu = _use_cpu(config)
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


def _cpu_threads(config: DictConfig, processes: int, workers: int) -> int:
    """Intra-op threads for CPU training.

    ``train.threads``, or the cores left to each process once the DataLoader workers have
    theirs. Oversubscribed cores make small
    matrix products many times slower (measured: 6 s against 1 s per step on 2 cores).
    """
    if config.train.threads:
        return int(config.train.threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, processes) - workers)


def modality_dropout(config: DictConfig, model: MultiModalModel) -> ModalityDropout:
    """The recipe's ``train.modality_dropout`` as a :class:`ModalityDropout`.

    ``p: null`` means 0.3 for objectives whose subset queries would otherwise be untrained
    (``subset_training_default``), else 0.

    Args:
        config: the recipe.
        model: the model (its objective decides the default).
    """
    md = config.train.modality_dropout
    p = md.p
    if p is None:
        p = 0.3 if getattr(model.objective, "subset_training_default", False) else 0.0
    if p > 0 and config.data.train.kind == "webdataset":
        # Rows of a stream have no stable index to seed their masks from (not built yet).
        logger.warning("train.modality_dropout is not applied to streamed (webdataset) "
                       "training data; subset queries of %s stay untrained",
                       config.objective.name)
        p = 0.0
    return ModalityDropout(float(p), int(md.min_present), int(config.train.seed))


def _epochs_per_pass(config: DictConfig, train_set: Any, processes: int) -> int:
    """Epochs one pass of the training loader chains: the whole run, plus one.

    A loader stalls for about one batch's decoding each time its sampler ends; chaining
    the epochs the run needs into one pass leaves no boundary inside the run.

    Args:
        config: the recipe.
        train_set: the training set (a stream has no epochs to chain).
        processes: training processes.
    """
    if isinstance(train_set, IterableDataset) or len(train_set) == 0:
        return 1
    rows = config.train.max_steps * config.train.grad_accum * config.data.batch_size * processes
    return min(10_000, math.ceil(rows / len(train_set)) + 1)


def _build(config: DictConfig, run_id: str) -> Run:
    """Make the accelerator, model, datasets, loaders, optimiser and scheduler, prepared."""
    acc = _make_accelerator(config)
    set_seed(config.train.seed)
    if config.train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    # train.init_from: the saved model's modalities loaded and frozen, the recipe's new ones
    config, model = initial_model(config)
    data = config.data
    specs = with_sample_cache(model.modalities, data.get("cache"))  # loads read the cache
    # frozen encoders' features read from the feature cache (computed on the first pass)
    specs = with_feature_cache(specs, model, data.get("feature_cache"), acc.device.type,
                               str(config.train.mixed_precision))
    train_set = build_dataset(data.train, specs, True, data.on_error,
                              config.train.seed, load_timeout=data.load_timeout)
    workers = (default_num_workers(train_set, acc.num_processes) if data.num_workers is None
               else int(data.num_workers))
    if acc.device.type == "cpu":
        torch.set_num_threads(_cpu_threads(config, acc.num_processes, workers))
    loader = build_dataloader(train_set, specs, data.batch_size, shuffle=True,
                              num_workers=workers, pin_memory=data.pin_memory,
                              seed=config.train.seed, dropout=modality_dropout(config, model),
                              epochs=_epochs_per_pass(config, train_set, acc.num_processes))
    val_set = val_loader = None
    if data.val is not None:
        val_set = build_dataset(data.val, specs, False, data.on_error,
                                load_timeout=data.load_timeout)
        val_loader = build_dataloader(val_set, specs, data.batch_size,
                                      shuffle=False, num_workers=workers, drop_last=False)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    streaming = isinstance(train_set, IterableDataset)
    if streaming:  # shards are split across processes by the dataset itself
        model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
    else:
        model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
    if val_loader is not None:
        val_loader = acc.prepare(val_loader)
    generators = ModuleGenerators(acc.unwrap_model(model))
    if any(True for _ in generators.generators()):  # e.g. Symile's negatives: n
        acc.register_for_checkpointing(generators)
    _bind_row_state(acc, acc.unwrap_model(model), train_set, streaming)
    output_dir = Path(config.train.output_dir)
    run = Run(config, output_dir, run_id, acc, model, acc.unwrap_model(model), optimizer,
               scheduler, train_set, loader, streaming, val_set, val_loader, TrainerState(),
               MetricsLog(output_dir) if acc.is_main_process else None)
    if _chance_is_ln_batch(config):
        # Negatives come from one micro-batch gathered over processes.
        run.loss_watch = LossWatch(data.batch_size * acc.num_processes)
    return run


def _bind_row_state(acc: Accelerator, model: MultiModalModel, train_set: Any,
                    streaming: bool) -> None:
    """Size an objective's per-row state from the training set; checkpoints carry it.

    (global_contrastive keeps a moving average per training row; a stream has no row
    indices, which ``bind_rows`` refuses with a clear error.)
    """
    bind = getattr(model.objective, "bind_rows", None)
    if bind is not None:
        state = bind(None if streaming else len(train_set), list(model.modalities))
        acc.register_for_checkpointing(state)


def _chance_is_ln_batch(config: DictConfig) -> bool:
    """Whether the objective's loss is ln(batch) at chance (a cross-entropy over the batch).

    (SigLIP's and the multi-view losses' chance values differ; Symile ``n_squared``'s is
    ln(batch^(M-1))).
    """
    name, params = config.objective.name, config.objective.params
    if name == "symile":
        return str(params.get("negatives", "n")) == "n"
    return name in ("clip", "gram")


# -- 2. resume --------------------------------------------------------------------------------


def _resume(run: Run) -> None:
    if not _resuming(run.config):
        return
    choice = str(run.config.train.resume)
    path = latest_checkpoint(run.output_dir) if choice == "auto" else Path(choice)
    if path is None:
        return
    if not path.is_dir():
        raise AnymodalError(f"train.resume: checkpoint {path} does not exist")
    run.state = load_checkpoint(run.accelerator, path)
    run.seen_bad = known_bad_rows(run)
    run.accelerator.print(f"resumed from {path} at step {run.state.step}")


# -- 3. the steps -----------------------------------------------------------------------------


def forward_backward(run: Run, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], float]:
    """Loss and backward of one micro-batch: the one place a step computes gradients.

    Every process runs backward (DDP reduces gradients together); a loss that is not finite
    on some process is replaced by zero everywhere, and the step is skipped afterwards.

    With ``train.micro_batch``, GradCache embeds the batch that many rows at a time and
    gives the same gradient (:mod:`anymodal.training.gradcache`).

    Returns:
        ``(the objective's output, the loss averaged over processes, NaN when not finite)``.
    """
    micro = run.config.train.micro_batch
    cache = GradCache.for_accelerator(run.raw_model, micro, run.accelerator) if micro else None
    # (Both hand the batch's row indices to an objective with per-row state.)
    out = cache.forward(batch) if cache else run.model(batch, return_loss=True)
    # Rows whose embeddings overflowed (left out of the loss by the model) are bad rows.
    finite, mean_loss = guard_loss(run, out["loss"], _overflowed(run, batch, out))
    loss = out["loss"] if finite else out["loss"].nan_to_num(0.0) * 0.0
    run.accelerator.backward(loss)
    if cache:  # re-embed each micro-batch with graph, back-propagate its embedding gradient
        cache.backward(sync=run.accelerator.sync_gradients)
    return out, mean_loss


def _overflowed(run: Run, batch: dict[str, Any], out: dict[str, Any]) -> list[BadRow]:
    flags = out.get(NONFINITE_KEY)
    return [] if flags is None else nonfinite_bad_rows(batch, flags, list(run.raw_model.encoders))


def _train_steps(run: Run, stop: StopRequest) -> bool:
    """Run optimiser steps up to ``train.max_steps``; return True when stopped by a signal."""
    acc, t = run.accelerator, run.config.train
    bar = progress_bar(t.max_steps, initial=run.state.step, unit="step",
                       disable=not (acc.is_main_process and run.config.logging.progress))
    window: dict[str, Any] = {"start": time.perf_counter(), "samples": 0, "ok": True}
    with bar:
        for batch in training_batches(run):
            if run.state.step >= t.max_steps:
                break
            # a. One all-reduce: bad rows, batch sizes, and the stop flag.
            agreed = agree_before_step(run, batch, stop)
            if agreed.stop and run.pending == 0:
                path = _checkpoint(run)
                acc.print(f"stopped by signal {stop.signum} at step {run.state.step}; "
                          f"saved {path}")
                return True
            run.state.batches_seen += 1
            run.state.bad_rows += agreed.new_bad
            run.state.rows_seen += agreed.rows
            check_bad_fraction(run)
            if agreed.too_small:  # every process skips together, or DDP would wait forever
                continue
            # b. Accumulate / backward / step.
            out, loss = _micro_step(run, batch, window)
            if not acc.sync_gradients:
                continue
            # c. After the step: the non-finite policy, the schedule and the clamp.
            if not window["ok"]:
                on_nonfinite(run, batch, window.pop("suspects", ()))
                window["ok"] = True
                continue
            _after_step(run, window, loss)
            # d. Log, hooks, evaluation and checkpoint.
            _log_step(run, out, loss, window, bar)
    return False


def _micro_step(run: Run, batch: dict[str, Any], window: dict[str, Any]
                ) -> tuple[dict[str, torch.Tensor], float]:
    acc = run.accelerator
    began = time.perf_counter()
    with acc.accumulate(run.model):
        out, loss = forward_backward(run, batch)
        window["ok"] = window["ok"] and math.isfinite(loss)
        if not math.isfinite(loss):  # name rows that overflowed, not the learning rate
            window["suspects"] = _overflowed(run, batch, out)
        run.pending += 1
        if acc.sync_gradients:
            if window["ok"] and run.config.optim.grad_clip > 0:
                acc.clip_grad_norm_(run.model.parameters(), run.config.optim.grad_clip)
            if window["ok"]:
                run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            run.pending = 0
    window["samples"] += len(batch["ids"]) * acc.num_processes
    run.step_time += time.perf_counter() - began
    return out, loss


def _after_step(run: Run, window: dict[str, Any], loss: float) -> None:
    run.nonfinite_run = 0
    run.scheduler.step()
    clamp_logit_scale(run)
    run.state.step += 1
    run.state.samples_seen += window["samples"]
    run.last_finite = loss


def _log_step(run: Run, out: dict[str, torch.Tensor], loss: float, window: dict[str, Any],
              bar: Any) -> None:
    acc, t, step = run.accelerator, run.config.train, run.state.step
    bar.update(1)
    # refresh=False: set_postfix would otherwise redraw at every step, ignoring the
    # at-most-every-N-seconds rule a log or a pipe gets (utils.progress)
    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    elapsed = time.perf_counter() - window["start"]
    values = {"train/loss": loss,
              "train/lr": run.optimizer.param_groups[0]["lr"],
              "train/logit_scale": float(run.raw_model.logit_scale().detach()),
              "train/samples_per_s": window["samples"] / max(elapsed, 1e-9),
              "train/world_size": acc.num_processes,
              "train/data_wait_fraction": _wait_fraction(run),
              **{f"train/{k}": float(v.detach()) for k, v in out.items()
                 if k != "loss" and torch.is_tensor(v) and v.numel() == 1}}
    window.update(start=time.perf_counter(), samples=0)
    if step % t.log_every == 0 or step == t.max_steps:
        _log(run, values)
    if run.loss_watch is not None:
        run.loss_watch.update(step, loss)
    if acc.is_main_process:
        get_plugin_manager().pm.hook.anymodal_on_step_end(
            step=step, metrics=values, state=run.context())
    if t.eval_every and step % t.eval_every == 0:
        _evaluate(run)
    if t.checkpoint_every and step % t.checkpoint_every == 0 and step != t.max_steps:
        _checkpoint(run)


def _wait_fraction(run: Run) -> float:
    total = run.data_wait + run.step_time
    return run.data_wait / total if total > 0 else 0.0


# -- log / evaluate / checkpoint ----------------------------------------------------------------


def _log(run: Run, values: dict[str, float]) -> None:
    run.accelerator.log(values, step=run.state.step)
    if run.metrics_log is not None:
        run.metrics_log.write(run.state.step, values)


def _evaluate(run: Run) -> dict[str, float]:
    """Validation metrics by ``anymodal eval``'s rule (every process takes part).

    The best of each is kept, and a collapsed modality is reported.
    """
    if run.val_loader is None:
        return {}
    metrics, data = evaluate(run.raw_model, run.val_loader, run.accelerator,
                             _eval_tasks(run.config), positives_rule(run.config, run.val_set))
    if data is not None:
        _warn_collapse(run, data.embeddings, data.present)
    best = run.state.best or {}
    for key, value in metrics.items():
        if key.endswith("chance_R@1"):
            continue
        better = (value < best.get(key, math.inf) if key.endswith("loss")
                  else value > best.get(key, -math.inf))
        if better:
            best[key] = value
    run.state.best = best
    run.final_metrics.update(metrics)
    _log(run, metrics)
    if run.accelerator.is_main_process:
        get_plugin_manager().pm.hook.anymodal_on_eval_end(
            step=run.state.step, metrics=metrics, state=run.context())
    return metrics


def _eval_tasks(config: DictConfig) -> list[str] | None:
    tasks = config.eval.tasks
    return None if tasks is None else [str(t) for t in tasks]


def positives_rule(config: DictConfig, val_set: Any) -> str:
    """The positives rule of validation: ``eval.positives``, else a default by data kind.

    ``label`` for synthetic rows (only their class relates them) and ``source`` for rows
    read from files (as ``anymodal eval`` defaults).

    Args:
        config: the recipe.
        val_set: the validation dataset.
    """
    from anymodal.data.synthetic import SyntheticDataset

    if config.eval.positives is not None:
        return str(config.eval.positives)
    return "label" if isinstance(val_set, SyntheticDataset) else "source"


def _warn_collapse(run: Run, embeddings: dict[str, torch.Tensor],
                   present: dict[str, torch.Tensor]) -> None:
    for key, cosine in collapsed_modalities(embeddings, present).items():
        if key not in run.warned:
            run.warned.add(key)
            logger.warning(
                "modality %r has collapsed at step %d: its validation embeddings have mean "
                "pairwise cosine %.3f (1 = one point), so queries involving it rank at "
                "chance. Try a lower optim.lr or model.logit_scale_init, or another objective.",
                key, run.state.step, cosine)


def _checkpoint(run: Run) -> Path:
    return save_checkpoint(run.accelerator, run.output_dir, run.state, run.config.train.keep)


# -- 4. finish ----------------------------------------------------------------------------------


def _finish(run: Run, seconds: float) -> None:
    t, acc = run.config.train, run.accelerator
    if not (t.eval_every and run.state.step % t.eval_every == 0):
        _evaluate(run)
    _checkpoint(run)  # the last step's only checkpoint: the loop skips it at max_steps
    acc.wait_for_everyone()
    if acc.is_main_process:
        run.raw_model.save_pretrained(run.output_dir / "model")
        print_end(run.output_dir, run.state.step, run.final_metrics, run.state.best or {},
                  run.state.bad_rows, seconds, _wait_fraction(run),
                  positives_rule(run.config, run.val_set))


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
