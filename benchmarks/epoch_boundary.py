"""The stall at epoch boundaries (issue 20): step time at the first step of each epoch
against the other steps, with the loader's epochs chained into one pass (the default) and
with one epoch per pass (the loader drains and refills at every boundary).

    python benchmarks/epoch_boundary.py DATA_DIR [--rows 256] [--steps 40]

DATA_DIR is a digits folder (``anymodal datasets build digits DATA_DIR``); the image,
audio and text modalities of its first ``--rows`` training rows are used, batch 32, two
persistent loader workers: 8 steps per epoch, as in the issue. Step times come from the
``time`` field of each step's record in ``metrics.jsonl`` (``train.log_every=1``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import unittest.mock
from pathlib import Path

RECIPE = {
    "name": "epoch_boundary",
    "modalities": {
        "image": {"encoder": "image_cnn_small",
                  "options": {"size": 32, "hflip": 0.0},
                  "params": {"channels": [16, 32, 64], "width": 128}},
        "audio": {"encoder": "audio_ast_tiny",
                  "options": {"sample_rate": 22050, "clip_seconds": 1.0, "n_mels": 64},
                  "params": {"embed_dim": 64, "depth": 2, "num_heads": 4, "max_frames": 128}},
        "text": {"encoder": "text_transformer_tiny", "options": {"max_length": 48},
                 "params": {"width": 64, "depth": 2, "heads": 2}},
    },
    "model": {"embed_dim": 64},
    "objective": {"name": "clip"},
}


def _manifest(data_dir: Path, rows: int, out: Path) -> Path:
    lines = (data_dir / "train.jsonl").read_text().splitlines()[:rows]
    records = []
    for line in lines:
        row = json.loads(line)
        for key in ("image", "audio"):
            row[key] = str((data_dir / row[key]).resolve())
        records.append({k: row[k] for k in ("id", "label", "image", "audio", "text")})
    path = out / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def run(manifest: Path, out: Path, steps: int, chained: bool) -> dict[str, float]:
    from anymodal.config import load_config
    from anymodal.training import loop, train

    config = load_config(None, {**RECIPE, "data": {
        "train": {"kind": "manifest", "path": str(manifest), "root": str(manifest.anchor)},
        "val": None, "batch_size": 32, "num_workers": 2},
        "train": {"max_steps": steps, "output_dir": str(out), "log_every": 1,
                  "overwrite": True, "threads": 1},
        "logging": {"progress": False, "trackers": []}})
    patch = unittest.mock.patch.object(loop, "_epochs_per_pass", lambda *a: 1)
    if chained:
        train(config)
    else:
        with patch:
            train(config)
    times = [json.loads(x)["time"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    per_step = [b - a for a, b in itertools.pairwise(times)]  # per_step[i]: step i + 2
    per_epoch = 8
    boundary = [t for i, t in enumerate(per_step, start=2) if i > per_epoch and
                (i - 1) % per_epoch == 0]
    other = [t for i, t in enumerate(per_step, start=2) if i > 2 and (i - 1) % per_epoch]
    return {"boundary": statistics.mean(boundary), "other": statistics.median(other),
            "total": times[-1] - times[0], "boundaries": len(boundary)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _manifest(args.data_dir.resolve(), args.rows, Path(tmp))
        for chained in (False, True):
            result = run(manifest, Path(tmp) / f"run{int(chained)}", args.steps, chained)
            print(f"{'chained epochs' if chained else 'one epoch per pass':20s} "
                  f"first step of an epoch {result['boundary']:.2f} s (mean of "
                  f"{result['boundaries']}), other steps {result['other']:.2f} s (median), "
                  f"{args.steps - 1} steps {result['total']:.1f} s")


if __name__ == "__main__":
    main()
