"""Synthetic labelled series, made without any file: tests, demos and smoke runs.

Class ``k`` is the waveform ``SHAPES[k % 4]`` at frequency band ``k // 4``; every item
draws its own frequency jitter, phases, amplitudes and noise from the caller's generator,
so the same seed gives the same items.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from anymodal_timeseries.config import TimeseriesConfig
from anymodal_timeseries.transforms import transform_series

__all__ = ["SHAPES", "synthesize_series", "waveform"]

SHAPES = ("sine", "square", "sawtooth", "noise")


def waveform(shape: str, cycles: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One waveform evaluated at ``cycles`` (time measured in periods).

    Shapes:
        cycles: ``[T, C]``; output: ``[T, C]`` in about ``[-1, 1]``.
    """
    if shape == "sine":
        return torch.sin(2 * math.pi * cycles)
    if shape == "square":
        return torch.sign(torch.sin(2 * math.pi * cycles))
    if shape == "sawtooth":
        return 2 * (cycles - torch.floor(cycles + 0.5))
    if shape == "noise":
        # Low-pass noise: a moving average whose window shrinks as the band rises, so
        # noise classes of different bands differ in smoothness as the others in frequency.
        steps, channels = cycles.shape
        per_step = float(cycles[-1, 0] - cycles[0, 0]) / max(steps - 1, 1)
        window = max(1, round(1 / (4 * max(per_step, 1e-6))))
        white = torch.randn(channels, 1, steps + window - 1, generator=generator,
                            dtype=cycles.dtype)
        smooth = F.avg_pool1d(white, window, stride=1).squeeze(1).T
        return smooth / smooth.std().clamp_min(1e-6)
    raise ValueError(f"unknown waveform {shape!r}; choose from {SHAPES}")


def synthesize_series(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                      config: TimeseriesConfig | None = None) -> list[dict[str, torch.Tensor]]:
    """``n`` evaluation-mode items; item ``i`` is of class ``labels[i] % num_classes``.

    Args:
        n: number of items.
        generator: the only source of randomness (same seed, same items).
        labels: ``LongTensor[n]`` of classes; drawn from ``generator`` when None.
        config: the modality's options.

    Shapes:
        each item: ``{"series": [length, channels], "mask": [length]}`` (no padding).
    """
    config = config or TimeseriesConfig()
    if labels is None:
        labels = torch.randint(0, config.num_classes, (n,), generator=generator)
    if len(labels) != n:
        raise ValueError(f"synthesize_series: got {len(labels)} labels for n={n} items")
    steps, channels = config.length, config.channels
    time = torch.arange(steps, dtype=torch.float64)[:, None] / steps  # [T, 1], one window
    items = []
    for label in (labels % config.num_classes).tolist():
        shape, band = SHAPES[label % len(SHAPES)], label // len(SHAPES)
        jitter = 1 + 0.1 * (2 * torch.rand((), generator=generator, dtype=torch.float64) - 1)
        frequency = 3.0 * (band + 1) * jitter  # periods per window
        phase = torch.rand(1, channels, generator=generator, dtype=torch.float64)
        amplitude = 0.5 + torch.rand(1, channels, generator=generator, dtype=torch.float64)
        wave = waveform(shape, frequency * time + phase, generator)
        noise = config.noise * torch.randn(steps, channels, generator=generator,
                                           dtype=torch.float64)
        items.append(transform_series((amplitude * wave + noise).float(), False, config))
    return items
