"""Learning curves of objectives on the digits study's data: loss, scale, bias and test R@1.

Why an objective stays at chance is visible in its curve: a loss that does not move, a
SigLIP bias stuck at its initial value, an R@1 that never leaves chance while the loss
falls (collapse). This script trains each chosen objective with the study's model, data and
budget (``examples/compare_objectives.py``: same encoders, AdamW, warmup and cosine
schedule, gradient-norm clipping), in a small loop of its own so that it can evaluate every
``--every`` steps, and writes the curves as a markdown table and a PNG.

Run from the repository root (the digits data is built on first use, like the study)::

    .venv/bin/python examples/objective_curves.py --objectives siglip,mv_infonce,clip \\
        --steps 60 --every 10 --out benchmarks/results/objective_curves
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import anymodal
from anymodal.data.build import build_dataloader, build_dataset
from anymodal.retrieval.evaluation import evaluate_retrieval
from anymodal.training.optim import build_optimizer, build_scheduler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_objectives as study  # the study's data, model and budget

__all__ = ["Curve", "main", "train_curve"]


@dataclass
class Curve:
    """One objective's curve.

    Attributes:
        label: the objective and its params.
        steps: optimiser steps at which the row was taken.
        loss: training loss (mean over the steps since the previous row).
        scale: the logit scale; bias: the SigLIP bias (None for other objectives).
        recall: task -> test R@1 per row (label positives, the objective's own score).
    """

    label: str
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    bias: list[float | None] = field(default_factory=list)
    recall: dict[str, list[float]] = field(default_factory=dict)


def _parse(spec: str) -> tuple[str, dict[str, Any]]:
    """``"siglip:init_bias=-4;pairs=a:b"`` -> ``("siglip", {"init_bias": -4.0, ...})``.

    Numbers become floats, ``true``/``false`` booleans, anything else stays a string.
    """
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        if value.lower() in ("true", "false"):
            params[key] = value.lower() == "true"
            continue
        try:
            params[key] = float(value)
        except ValueError:
            params[key] = value
    return name, params


def _record(curve: Curve, model: Any, step: int, losses: list[float], data_dir: Path) -> None:
    model.eval()
    metrics = evaluate_retrieval(model, data_dir / "test.jsonl", ",".join(study.TASKS),
                                 ks=(1,), positives="label")
    model.train()
    curve.steps.append(step)
    curve.loss.append(sum(losses) / max(len(losses), 1))
    curve.scale.append(float(model.logit_scale().detach()))
    bias = getattr(model.objective, "bias", None)
    curve.bias.append(None if bias is None else float(bias.detach()))
    for task in study.TASKS:
        curve.recall.setdefault(task, []).append(metrics[task]["R@1"])


def train_curve(spec: str, data_dir: Path, budget: Any, every: int, seed: int = 0,
                model_options: dict[str, Any] | None = None) -> Curve:
    """Train one objective for ``budget.steps`` steps; evaluate every ``every`` steps.

    Args:
        model_options: ``model.*`` values to set (``{"center": False}``,
            ``{"logit_scale_init": 5.0}``): the study's model otherwise.
    """
    name, params = _parse(spec)
    config = study.make_config(name, params, seed, data_dir / "train.jsonl", budget,
                               budget.batch_size, Path("/nonexistent"))
    for key, value in (model_options or {}).items():
        config.model[key] = value
    torch.manual_seed(seed)
    model = anymodal.MultiModalModel(config).train()
    dataset = build_dataset(config.data.train, model.modalities, True, "raise", seed)
    loader = build_dataloader(dataset, model.modalities, budget.batch_size, shuffle=True,
                              seed=seed)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    curve, losses, step = Curve(spec), [], 0
    _record(curve, model, 0, [float("nan")], data_dir)
    while step < budget.steps:
        for batch in loader:
            loss = model(batch, return_loss=True)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.grad_clip > 0:  # as the training loop does
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % every == 0 or step == budget.steps:
                _record(curve, model, step, losses, data_dir)
                losses = []
            if step == budget.steps:
                break
    return curve


def format_curves(curves: Sequence[Curve]) -> str:
    """One markdown table per objective: step, loss, scale, bias, R@1 per task."""
    blocks = []
    for curve in curves:
        head = "| step | loss | scale | bias | " + " | ".join(study.TASKS) + " |"
        lines = [f"**{curve.label}**", "", head, "|" + "---|" * (4 + len(study.TASKS))]
        for i, step in enumerate(curve.steps):
            bias = curve.bias[i]
            cells = [f"{curve.recall[t][i]:.3f}" for t in study.TASKS]
            lines.append(f"| {step} | {curve.loss[i]:.3f} | {curve.scale[i]:.2f} | "
                         f"{'-' if bias is None else f'{bias:.2f}'} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_curves(curves: Sequence[Curve], path: Path) -> None:
    """Loss and mean test R@1 against steps, one line per objective."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for curve in curves:
        left.plot(curve.steps[1:], curve.loss[1:], marker="o", label=curve.label)
        mean = [sum(curve.recall[t][i] for t in study.TASKS) / len(study.TASKS)
                for i in range(len(curve.steps))]
        right.plot(curve.steps, mean, marker="o", label=curve.label)
    left.set(xlabel="step", ylabel="training loss", title="loss")
    right.set(xlabel="step", ylabel="mean test R@1 over the study's tasks", ylim=(0, 1),
              title="retrieval (label positives)")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> list[Curve]:
    """Parse arguments, train each objective, write ``OUT.md`` and ``OUT.png``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objectives", default="siglip,mv_infonce,clip",
                        help="comma-separated name[:key=value;key=value] specs")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=study.Budget.lr, help="peak AdamW lr")
    parser.add_argument("--limit", type=int, default=None, help="first N digits only")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--model", default="",
                        help="model options for every curve, 'center=false;logit_scale_init=5'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=study.RESULTS / "objective_curves")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    limit = args.limit
    data_dir = args.data or study.REPO / "data" / ("digits3" if limit is None
                                                   else f"digits3_limit{limit}")
    study.build_data(data_dir, limit)
    budget = study.Budget(steps=args.steps, lr=args.lr)
    curves = []
    for spec in args.objectives.split(","):
        started = time.perf_counter()
        curves.append(train_curve(spec, data_dir, budget, args.every, args.seed,
                                  _parse(":" + args.model)[1]))
        print(f"{spec}: {time.perf_counter() - started:.0f} s", flush=True)
    table = format_curves(curves)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    plot_curves(curves, args.out.with_suffix(".png"))
    return curves


if __name__ == "__main__":
    main()
