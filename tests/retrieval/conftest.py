"""Models for the retrieval tests: three ``vector`` modalities, small widths."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

OBJECTIVES = ["clip", "siglip", "symile", "gram", "mv_infonce", "mv_dhel"]


def vector_config(objective: str = "clip", embed_dim: int = 16, **extra: Any) -> Any:
    from anymodal.config import load_config

    mods = {key: {"modality": "vector", "options": {"view_seed": seed},
                  "params": {"hidden": 32, "width": 32}}
            for key, seed in (("a", 1), ("b", 2), ("c", 3))}
    return load_config(None, {"modalities": mods, "model": {"embed_dim": embed_dim},
                              "objective": {"name": objective}, **extra})


@pytest.fixture
def make_model() -> Callable[..., Any]:
    """An untrained model with a fixed seed: enough for ranking-rule tests."""
    from anymodal.model import MultiModalModel

    def make(objective: str = "clip", seed: int = 0, **extra: Any) -> Any:
        torch.manual_seed(seed)
        return MultiModalModel(vector_config(objective, **extra)).eval()

    return make


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``objective -> run folder`` of a model trained a few steps (cached per session)."""
    from anymodal.training import train

    runs: dict[str, Path] = {}

    def get(objective: str) -> Path:
        if objective not in runs:
            out = tmp_path_factory.mktemp(f"run_{objective}")
            config = vector_config(objective, data={"train": {"size": 64}, "batch_size": 16},
                                   train={"max_steps": 3, "output_dir": str(out),
                                          "log_every": 1},
                                   logging={"progress": False, "trackers": ["csv"]})
            train(config)
            runs[objective] = out
        return runs[objective]

    return get


def synth(model: Any, key: str, n: int, seed: int, labels: torch.Tensor | None = None
          ) -> list[torch.Tensor]:
    """``n`` synthetic items of modality ``key``."""
    return model.modalities[key].synthesize(n, torch.Generator().manual_seed(seed), labels)


def write_manifest(path: Path, model: Any, n: int, seed: int = 0,
                   keys: tuple[str, ...] = ("a", "b", "c")) -> list[dict[str, Any]]:
    """A JSONL manifest of ``n`` rows with inline comma-separated vectors and labels."""
    labels = torch.randint(0, 16, (n,), generator=torch.Generator().manual_seed(seed))
    columns = {k: synth(model, k, n, seed + i + 1, labels) for i, k in enumerate(keys)}
    rows = [{"id": f"r{i}", "label": int(labels[i]),
             **{k: ",".join(f"{x:.6f}" for x in v[i].tolist()) for k, v in columns.items()}}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
