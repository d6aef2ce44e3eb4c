"""Shared fixtures of the core suite."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state() -> Iterator[None]:
    """Accelerate keeps process-wide singletons; each test starts from none."""
    yield
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


@pytest.fixture
def cli_env() -> dict[str, str]:
    """The environment for ``python -m anymodal`` subprocesses (quiet, deterministic)."""
    env = dict(os.environ)
    env.update({"PYTHONHASHSEED": "0", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"})
    return env


def vector_overrides(tmp_path: Path, objective: str = "clip", modalities: int = 2,
                     **extra: object) -> list[str]:
    """``key=value`` overrides for a tiny synthetic run on vector modalities."""
    items = []
    for index, key in enumerate("abcd"[:modalities]):
        items += [f"modalities.{key}.modality=vector",
                  f"modalities.{key}.options.view_seed={index + 1}",
                  f"modalities.{key}.params.width=32", f"modalities.{key}.params.hidden=32"]
    items += [
        "model.embed_dim=16", f"objective.name={objective}",
        "data.train.size=64", "data.batch_size=8", "data.val.kind=synthetic",
        "data.val.size=32", "data.val.seed=1",
        f"train.output_dir={tmp_path / 'run'}", "train.max_steps=4", "train.log_every=1",
        "logging.progress=false",
    ]
    items += [f"{k}={v}" for k, v in extra.items()]
    return items


PYTHON = sys.executable
