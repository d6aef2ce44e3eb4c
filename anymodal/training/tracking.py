"""Where metrics go.

Accelerate's trackers (a built-in CSV one among them) and ``metrics.jsonl``, which every
run writes.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker

from anymodal.errors import ConfigError

__all__ = ["CSVTracker", "MetricsLog", "make_trackers"]

_OPTIONAL = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow",
             "comet_ml": "comet_ml", "aim": "aim", "clearml": "clearml"}


class CSVTracker(GeneralTracker):
    """An Accelerate tracker writing ``metrics.csv``.

    One row per logged step; the header grows as new keys appear, by rewriting the file.

    Args:
        run_name: the run's name (unused: one file per run folder).
        logging_dir: where ``metrics.csv`` goes.
    """

    name = "csv"
    requires_logging_directory = True

    def __init__(self, run_name: str, logging_dir: str | Path) -> None:
        super().__init__()
        self.path = Path(logging_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = ["step"]
        if self.path.exists():  # a resumed run appends to the same table
            with self.path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or ["step"])
                self.rows = list(reader)

    @property
    def tracker(self) -> Path:
        """The CSV file (what Accelerate calls the tracker object)."""
        return self.path

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        """Write the hyper-parameters to ``hparams.json`` beside the CSV."""
        (self.path.parent / "hparams.json").write_text(json.dumps(values, indent=2, default=str))

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Append a row of the scalar values (rewriting the file when a new key appears)."""
        row = {"step": step, **{k: v for k, v in values.items() if _scalar(v)}}
        new = [k for k in row if k not in self.columns]
        self.columns += new
        self.rows.append(row)
        if new:
            with self.path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(self.rows)
        else:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.columns).writerow(row)

    def finish(self) -> None:
        """Nothing to close: every row is written when logged."""
        pass


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


class MetricsLog:
    """Appends one JSON object per logged step to ``metrics.jsonl`` (main process only)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, values: dict[str, Any]) -> None:
        """Append ``values`` at ``step`` as one JSON line (non-scalars dropped)."""
        record = {"step": step, "time": round(time.time(), 3),
                  **{k: v for k, v in values.items() if _scalar(v)}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def make_trackers(names: list[str], output_dir: str | Path, run_name: str) -> list[Any]:
    """Accelerate ``log_with`` entries for the names in the recipe (``csv`` is built in)."""
    trackers: list[Any] = []
    for name in names:
        if name == "csv":
            trackers.append(CSVTracker(run_name, output_dir))
        elif name in _OPTIONAL:
            if importlib.util.find_spec(_OPTIONAL[name]) is None:
                raise ConfigError(
                    f"logging.trackers names {name!r}, which is not installed: pip install {name}"
                )
            trackers.append(name)
        else:
            raise ConfigError(f"logging.trackers: unknown tracker {name!r}; valid choices: "
                              f"csv, {', '.join(sorted(_OPTIONAL))}")
    return trackers
