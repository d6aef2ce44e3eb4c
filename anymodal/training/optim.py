"""AdamW with weight-decay groups and per-modality learning rates, and the LR schedule."""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import DictConfig
from torch.optim.lr_scheduler import LambdaLR

from anymodal.model import MultiModalModel

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]


def _decays(name: str, param: torch.nn.Parameter) -> bool:
    # As open_clip: no decay on biases, norms (1-D), embeddings, the logit scale, and the
    # learned missing-modality embeddings.
    if param.ndim < 2:
        return False
    return not any(tag in name for tag in ("missing", "log_logit_scale", "embedding", "pos_"))


def _lr_mult(name: str, config: DictConfig) -> float:
    for part in ("encoders.", "heads."):
        if name.startswith(part):
            key = name[len(part):].split(".", 1)[0]
            return float(config.modalities[key].lr_mult)
    return 1.0


def build_optimizer(model: MultiModalModel, config: DictConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, grouped by (weight decay, lr multiplier).

    Each group carries ``lr_mult``; the scheduler scales every group's base lr by the same
    schedule factor, so the multipliers hold throughout training.
    """
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        groups.setdefault((_decays(name, param), _lr_mult(name, config)), []).append(param)
    optim = config.optim
    param_groups: list[dict[str, Any]] = [
        {"params": params, "weight_decay": optim.weight_decay if decay else 0.0,
         "lr": optim.lr * mult, "lr_mult": mult}
        for (decay, mult), params in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups, lr=optim.lr, betas=tuple(optim.betas),
                             eps=optim.eps)


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """The multiplier of the base lr at optimiser step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        decay = 1.0 - progress
    else:
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * decay


def build_scheduler(optimizer: torch.optim.Optimizer, config: DictConfig) -> LambdaLR:
    """The warmup-then-schedule multiplier of every group's lr, per optimiser step."""
    o, t = config.optim, config.train
    return LambdaLR(optimizer, lambda step: lr_factor(step, t.max_steps, o.warmup_steps,
                                                     o.schedule, o.min_lr_ratio))
