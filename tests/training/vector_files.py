"""A manifest of ``.npy`` vector files, and a run's logged losses: shared by the cache tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROWS = 32


def write_vector_manifest(folder: Path, rows: int = ROWS, labels: bool = False) -> Path:
    """``rows`` rows of three 32-d vector files ``a``, ``b``, ``c`` and ``train.jsonl``."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(rows):
        for key in "abc":
            np.save(folder / f"{key}{i}.npy", rng.normal(size=32).astype(np.float32))
        row = {"id": f"r{i}", "a": f"a{i}.npy", "b": f"b{i}.npy", "c": f"c{i}.npy"}
        records.append({**row, "label": i % 4} if labels else row)
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return manifest


def logged_losses(run: Path) -> list[float]:
    """The ``train/loss`` values of ``run``'s ``metrics.jsonl``, in order."""
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text()
            .splitlines() if "train/loss" in line]
