"""Vector-file manifests, cache builds and two-process runs: shared by the training tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from anymodal.config import ExperimentConfig, load_config
from tests.conftest import PYTHON, REPO, vector_overrides

ROWS = 32


def vector_rows(folder: Path, rows: int = ROWS, keys: str = "abc",
                labels: bool = False) -> list[dict]:
    """Write a 32-d ``.npy`` per row and modality in ``keys``; the manifest rows naming them.

    One generator (seed 0) draws the vectors row by row, in ``keys`` order. With ``labels``,
    row ``i`` has label ``i % 4``.
    """
    rng = np.random.default_rng(0)
    records = []
    for i in range(rows):
        for key in keys:
            np.save(folder / f"{key}{i}.npy", rng.normal(size=32).astype(np.float32))
        row = {"id": f"r{i}", **{key: f"{key}{i}.npy" for key in keys}}
        records.append({**row, "label": i % 4} if labels else row)
    return records


def write_manifest(folder: Path, records: list[dict]) -> Path:
    """``folder / "train.jsonl"`` holding ``records``."""
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return manifest


def write_vector_manifest(folder: Path, rows: int = ROWS, labels: bool = False) -> Path:
    """``rows`` rows of three 32-d vector files ``a``, ``b``, ``c`` and ``train.jsonl``."""
    return write_manifest(folder, vector_rows(folder, rows, "abc", labels))


def manifest_config(tmp_path: Path, manifest: Path, *extra: str) -> ExperimentConfig:
    """The tiny two-vector run of ``vector_overrides`` trained on ``manifest``, no validation."""
    return load_config(None, [*vector_overrides(tmp_path), "data.train.kind=manifest",
                              f"data.train.path={manifest}", "data.val=null", *extra])


def logged_losses(run: Path) -> list[float]:
    """The ``train/loss`` values of ``run``'s ``metrics.jsonl``, in order."""
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text()
            .splitlines() if "train/loss" in line]


def cache_entries(cache: Path) -> dict[Path, int]:
    """Every entry file under ``cache`` with its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")}


def build_cache(overrides: list[str], env: dict[str, str]) -> dict:
    """``anymodal cache build`` of the smoke recipe with ``overrides``; its JSON report."""
    built = subprocess.run([PYTHON, "-m", "anymodal", "cache", "build", "recipes/smoke_clip.yaml",
                            *overrides, "--no-progress", "--json"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    report: dict = json.loads(built.stdout)
    return report


def train_two_processes(overrides: list[str], env: dict[str, str]) -> None:
    """The smoke recipe under ``accelerate launch`` with two CPU processes (gloo)."""
    launched = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "-m", "anymodal", "train", "recipes/smoke_clip.yaml", *overrides],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
