"""Training speed of the digits six-modality recipe with and without the sample cache.

    python benchmarks/cache.py [--epochs 3]     # writes benchmarks/results/cache.md

Needs the data built first (``anymodal datasets build digits data/digits``). Two runs of
``plugins/datasets/anymodal_datasets/recipes/digits_symile.yaml``, one after the other, in
fresh output folders: without ``data.cache``, then with a fresh cache of the five
file-backed modalities (the captions are inline text: nothing to decode). The first epoch of
the cached run fills the cache; steps/s is measured from the second epoch on, from the
``time`` of each step in ``metrics.jsonl`` (no validation, no checkpoints in between).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = "plugins/datasets/anymodal_datasets/recipes/digits_symile.yaml"
RESULTS = REPO / "benchmarks" / "results" / "cache.md"
CACHED = "[image,audio,video,pointcloud,graph]"
TRAIN_ROWS = REPO / "data" / "digits" / "train.jsonl"

sys.path.insert(0, str(Path(__file__).parent))
from epoch_runs import TABLE_HEADER, EpochRun, train_epochs  # noqa: E402  (this folder)


def run(out: Path, epochs: int, extra: list[str]) -> EpochRun:
    """Train ``epochs`` epochs (batch 64) in ``out / "run"``; steps/s of epoch 1 and later."""
    per_epoch = sum(1 for _ in TRAIN_ROWS.open()) // 64
    overrides = ["train.log_every=1", "train.eval_every=0", "train.checkpoint_every=0",
                 "data.val=null", "logging.progress=false", "logging.trackers=[csv]",
                 "train.resume=no", *extra]
    return train_epochs(RECIPE, out / "run", per_epoch, epochs, overrides)


def loader_rate(cache: Path | None, epochs: int = 2) -> float:
    """Rows/s of the training loader alone (2 workers) in its last epoch, no model step."""
    import torch

    from anymodal.config import load_config
    from anymodal.data.build import build_dataloader, build_dataset
    from anymodal.data.sample_cache import with_sample_cache
    from anymodal.model import MultiModalModel

    torch.set_num_threads(1)
    extra = [] if cache is None else [f"data.cache.dir={cache}",
                                      f"data.cache.modalities={CACHED}"]
    config = load_config(REPO / RECIPE, extra)
    specs = with_sample_cache(MultiModalModel(config).modalities, config.data.get("cache"))
    dataset = build_dataset(config.data.train, specs, True, "skip")
    loader = build_dataloader(dataset, specs, 64, shuffle=True, num_workers=2, epochs=epochs)
    per_epoch = len(dataset) // 64
    began = None
    for index, _ in enumerate(loader):
        if index == per_epoch * (epochs - 1) - 1:
            began = time.perf_counter()  # the last epoch starts after this batch
    assert began is not None
    return per_epoch * 64 / (time.perf_counter() - began)


def per_item_ms(cache: Path, rows: int = 60) -> dict[str, tuple[float, float]]:
    """Per cached modality: ms of load + train transform per item, from the files and
    from the cache (its second pass), one process, over the first ``rows`` train rows."""
    import torch
    from omegaconf import OmegaConf

    from anymodal.config import load_config
    from anymodal.data.manifest import read_manifest_rows
    from anymodal.data.sample_cache import with_sample_cache
    from anymodal.data.sources import path_rule, resolve_source
    from anymodal.model import MultiModalModel

    torch.set_num_threads(1)
    config = load_config(REPO / RECIPE, [])
    specs = MultiModalModel(config).modalities
    keys = CACHED.strip("[]").split(",")
    cached = with_sample_cache(specs, OmegaConf.create({"dir": str(cache), "modalities": keys}))
    table = read_manifest_rows(TRAIN_ROWS)[:rows]
    out = {}
    for key in keys:
        sources = [resolve_source(row[key], TRAIN_ROWS.parent, None, path_rule(specs[key].load))
                   for row in table if row.get(key) is not None]
        specs[key].transform(specs[key].load(sources[0]), True)  # lazy imports, untimed
        timings = []
        for spec in (specs[key], cached[key], cached[key]):  # files, fill, read
            began = time.perf_counter()
            for source in sources:
                spec.transform(spec.load(source), True)
            timings.append(1000 * (time.perf_counter() - began) / len(sources))
        out[key] = (timings[0], timings[2])
    return out


def step_and_batch_seconds(cache: Path, batches: int = 3) -> dict[str, float]:
    """Seconds of one training step (forward, backward, AdamW) and of loading one batch of
    64 rows from the files and from the (warm) cache, each in one process and one thread.

    A loader worker pays the loading time per batch and the training process the step, so
    on C cores a run makes at most ``min(1 / step, C / (step + batch))`` steps per second:
    :func:`ceiling` turns these into the most the cache can buy on this machine.
    """
    import torch
    from omegaconf import OmegaConf
    from torch.utils.data import Subset

    from anymodal.config import load_config
    from anymodal.data.build import build_dataloader, build_dataset
    from anymodal.data.sample_cache import with_sample_cache
    from anymodal.model import MultiModalModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = load_config(REPO / RECIPE, [])
    model = MultiModalModel(config).train()
    specs = model.modalities
    cached = with_sample_cache(specs, OmegaConf.create(
        {"dir": str(cache), "modalities": CACHED.strip("[]").split(",")}))
    out = {}
    for name, use in (("files", specs), ("cache fill", cached), ("cache", cached)):
        rows = Subset(build_dataset(config.data.train, use, True, "skip"), range(64 * batches))
        began = time.perf_counter()
        loaded = list(build_dataloader(rows, use, 64, shuffle=False))
        out[name] = (time.perf_counter() - began) / batches
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for batch in loaded * 2:  # the first pass warms up
        began = time.perf_counter()
        model.compute_loss(batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - began)
    out["step"] = sum(times[batches:]) / batches
    return out


def ceiling(seconds: dict[str, float], cores: int) -> tuple[float, float]:
    """Most steps/s without and with the cache on ``cores`` cores (see
    :func:`step_and_batch_seconds`)."""
    step = seconds["step"]
    return tuple(min(1 / step, cores / (step + seconds[k])) for k in ("files", "cache"))


def ceiling_text() -> str:
    """The ``--ceiling`` paragraph (see :func:`step_and_batch_seconds`)."""
    with tempfile.TemporaryDirectory() as tmp:
        sec = step_and_batch_seconds(Path(tmp) / "samples")
    cores = len(os.sched_getaffinity(0))
    plain_max, cached_max = ceiling(sec, cores)
    return (f"\nCeiling (`python benchmarks/cache.py --ceiling`: one process, one thread, "
            f"batch 64): a step (forward, backward, AdamW) {sec['step']:.3f} s; loading "
            f"a batch {sec['files']:.3f} s from the files, {sec['cache']:.3f} s from the "
            f"warm cache ({sec['cache fill']:.3f} s filling it). On {cores} cores a run "
            f"makes at most min(1/step, {cores}/(step + batch)) steps/s: "
            f"{plain_max:.2f} without the cache, {cached_max:.2f} with it, so the cache "
            f"can buy at most **{cached_max / plain_max:.2f}x** here (load average "
            f"{os.getloadavg()[0]:.1f}).\n")


def per_item_text() -> str:
    """The ``--per-item`` sentence (see :func:`per_item_ms`)."""
    with tempfile.TemporaryDirectory() as tmp:
        ms = per_item_ms(Path(tmp) / "samples")
    return ("\nPer item (`python benchmarks/cache.py --per-item`: load + train transform, "
            "one process, first 60 train rows, ms from the files / from the cache): "
            + ", ".join(f"{k} {a:.2f} / {b:.2f}" for k, (a, b) in ms.items())
            + f" (load average {os.getloadavg()[0]:.1f}).\n")


def loader_text() -> str:
    """The ``--loader-only`` sentence (see :func:`loader_rate`)."""
    with tempfile.TemporaryDirectory() as tmp:
        plain_rate, cached_rate = loader_rate(None), loader_rate(Path(tmp) / "samples")
    return (f"\nLoader alone (`python benchmarks/cache.py --loader-only`: the training "
            f"loader, 2 workers, batch 64, its second epoch, no model step): "
            f"{plain_rate:.0f} rows/s without the cache, {cached_rate:.0f} rows/s with "
            f"it, **{cached_rate / plain_rate:.2f}x** (load average "
            f"{os.getloadavg()[0]:.1f} at the end).\n")


def main() -> None:
    """Run both, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--loader-only", action="store_true",
                        help="only the loader's rows/s (no training runs)")
    parser.add_argument("--per-item", action="store_true",
                        help="only ms per item of each cached modality, files vs cache")
    parser.add_argument("--ceiling", action="store_true",
                        help="only the step's and a batch's load seconds, and the most "
                             "steps/s they allow with and without the cache")
    args = parser.parse_args()
    for wanted, measure in ((args.ceiling, ceiling_text), (args.per_item, per_item_text),
                            (args.loader_only, loader_text)):
        if wanted:  # one measurement, appended to the results page
            text = measure()
            print(text)
            RESULTS.write_text((RESULTS.read_text() if RESULTS.exists() else "") + text)
            return
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        plain = run(Path(tmp) / "plain", args.epochs, [])
        cache = Path(tmp) / "samples"
        cached = run(Path(tmp) / "cached", args.epochs,
                     [f"data.cache.dir={cache}", f"data.cache.modalities={CACHED}"])
        size = sum(p.stat().st_size for p in cache.rglob("*.safetensors")) / 2**20
    ratio = cached.later / plain.later
    lines = [
        "# Sample cache: digits six-modality training (issue 16)",
        "",
        f"Command: `python benchmarks/cache.py --epochs {args.epochs}` (recipe `{RECIPE}`, "
        f"batch 64, {plain.per_epoch} steps per epoch, {plain.steps} steps, "
        "2 loader workers, no validation).",
        "",
        TABLE_HEADER,
        plain.row("no cache"),
        cached.row("sample cache (filled in epoch 1)"),
        "",
        f"Ratio from epoch 2 on: **{ratio:.2f}x**. Cache size: {size:.0f} MiB for "
        f"{CACHED}. Epoch 1 includes start-up (model build, worker start). Load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (2 cores).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(RESULTS.read_text() + "\n" + text if RESULTS.exists() else text)


if __name__ == "__main__":
    main()
