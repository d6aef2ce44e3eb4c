"""Emergent alignment: audio retrieves text although no training row held both.

ImageBind's claim, on the ``digits`` data: bind every modality to images with paired data
sets that each hold *two* modalities, and modalities never seen together align through the
image. Here the training split of ``digits`` (built with ``image,audio,text``) is cut into
two disjoint halves that become two sources of one mixture (``data.train.kind: mixture``,
:mod:`anymodal.data.mixture`):

- ``image_text``: the image and the caption of the even rows (the audio is not loaded);
- ``image_audio``: the image and the spoken digit of the odd rows (the text is not loaded).

Pairwise ``clip`` over every pair present trains image–text and image–audio only (a batch
never has a row with both audio and text). The model is then evaluated on the test split
with label positives (an item of the query's class is correct; chance R@1 is the fraction of
the gallery sharing the query's label): ``audio->text`` and ``text->audio`` are the
emergent tasks, ``image->text`` and ``image->audio`` the trained ones.

Two ways to mix the sources are compared (``data.train.mixing``): ``ratio`` (every batch
holds rows of both sources by weight) and ``batch`` (each batch comes from one source).
Optionally a second recipe binds audio to a frozen image–text model (``--frozen``): stage
one trains image and text on the ``image_text`` source alone, stage two starts from that
model (``train.init_from``), keeps its encoders and heads frozen and trains the audio tower
on the ``image_audio`` source.

Run from the repository root (builds the data first if needed, ~2.5 min on 2 CPUs)::

    .venv/bin/python examples/emergent_alignment.py --variants ratio,batch,frozen --jobs 3
    .venv/bin/python examples/emergent_alignment.py --quick          # a smoke run

The first line made ``benchmarks/results/emergent_alignment.md`` (52 min on a 2-core machine
that other jobs kept at a load of 15-25; each run needs a few CPU minutes).

It prints a markdown table of test R@1 (mean ± std over seeds) beside chance and writes it,
with the command, date and machine, to ``benchmarks/results/emergent_alignment.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import multiprocessing
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import anymodal
from anymodal.retrieval.evaluation import evaluate_retrieval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_common import (  # the examples folder, put on the path above
    DIGITS_MODALITIES,
    machine,
)

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "emergent_alignment.md"
MODALITIES = ("image", "audio", "text")
#: The emergent tasks first, then the trained ones.
TASKS = ("audio->text", "text->audio", "image->text", "image->audio", "audio->image")
#: The encoders and options of the digits recipes for these three modalities.
MODALITY_CONFIG = DIGITS_MODALITIES


@dataclass(frozen=True)
class Budget:
    """What every run gets.

    Args:
        steps: optimiser steps (each stage of ``--frozen`` gets this many).
        batch_size: rows per step.
        embed_dim: width of the shared space.
        lr: AdamW peak learning rate (linear warmup, then cosine).
        warmup_steps: warmup steps.
    """

    steps: int = 300
    batch_size: int = 64
    embed_dim: int = 64
    lr: float = 2e-3
    warmup_steps: int = 20


QUICK = Budget(steps=6, batch_size=16, warmup_steps=2)
QUICK_LIMIT = 60


@dataclass
class Results:
    """Test R@1 per variant and task, and training seconds.

    Attributes:
        recall: variant -> task -> R@1 per seed.
        seconds: variant -> training seconds per seed.
        chance: task -> R@1 of a random ranking.
        queries: task -> number of test queries.
        rows: source name -> training rows.
    """

    recall: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def split_sources(data_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Write the two disjoint halves of ``train.jsonl`` as manifests; name -> path.

    Rows in id order alternate between the halves (so each holds about half of every
    class); paths become absolute (the recipe's ``root`` is ``data_dir``). Each half keeps
    only the columns of its pair, so neither source could give audio and text together
    even without its ``modalities`` list.

    Args:
        data_dir: the built ``digits`` folder.
        out_dir: where the two manifests go.
    """
    rows = [json.loads(line) for line in (data_dir / "train.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    rows.sort(key=lambda r: str(r["id"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for parity, (name, keys) in enumerate((("image_text", ("image", "text")),
                                           ("image_audio", ("image", "audio")))):
        half = []
        for row in rows[parity::2]:
            kept = {"id": row["id"], "label": row["label"]}
            for key in keys:
                value = row.get(key)
                kept[key] = str(data_dir.resolve() / value) if key != "text" else value
            half.append(kept)
        path = out_dir / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in half), encoding="utf-8")
        paths[name] = path
    return paths


def _source(path: Path, keys: Sequence[str], root: Path) -> dict[str, Any]:
    return {"kind": "manifest", "path": str(path), "root": str(root.resolve()),
            "modalities": list(keys), "weight": 1.0}


def make_config(sources: list[dict[str, Any]], seed: int, budget: Budget, output_dir: Path,
                mixing: str = "ratio", modalities: Sequence[str] = MODALITIES,
                init_from: Path | None = None) -> Any:
    """The validated config of one run: a mixture of ``sources``, pairwise clip.

    Args:
        sources: ``data.train.sources`` entries.
        seed: the run's seed.
        budget: steps, batch, width and learning rate.
        output_dir: the run's folder.
        mixing: ``ratio`` or ``batch``.
        modalities: the recipe's modality keys.
        init_from: a saved model to start from, frozen (``train.init_from``).
    """
    train: dict[str, Any] = {
        "max_steps": budget.steps, "output_dir": str(output_dir), "seed": seed,
        "overwrite": True, "eval_every": 0, "checkpoint_every": 0,
        "log_every": max(budget.steps, 1),
        # One thread and no loader worker: fastest for these tiny towers on a shared CPU.
        "threads": 1, "cpu": True}
    if init_from is not None:
        train["init_from"] = str(init_from)
    return anymodal.load_config(None, {
        "name": "emergent_alignment",
        "modalities": {k: MODALITY_CONFIG[k] for k in modalities},
        "model": {"embed_dim": budget.embed_dim},
        "objective": {"name": "clip", "params": {"pairs": "all"}},
        "data": {"train": {"kind": "mixture", "mixing": mixing, "sources": sources},
                 "val": None, "batch_size": budget.batch_size, "num_workers": 0},
        "optim": {"lr": budget.lr, "warmup_steps": min(budget.warmup_steps, budget.steps)},
        "train": train,
        "logging": {"progress": False, "trackers": []},
    })


def _train(config: Any) -> tuple[Path, float]:
    """Train quietly; ``(model folder, seconds)``."""
    from anymodal.training import train

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(config)
    return result.output_dir / "model", time.perf_counter() - started


def _evaluate(model_dir: Path, manifest: Path) -> dict[str, float]:
    model = anymodal.MultiModalModel.from_pretrained(model_dir).eval()
    metrics = evaluate_retrieval(model, manifest, ",".join(TASKS), ks=(1,), positives="label")
    return {task: float(metrics[task]["R@1"]) for task in TASKS}


def run_mixture(paths: dict[str, Path], data_dir: Path, seed: int, budget: Budget,
                work: Path, mixing: str, heldout: Path | None = None
                ) -> tuple[dict[str, float], float]:
    """Joint training on both sources; ``({task: R@1 on heldout}, seconds)``.

    Args:
        paths: the two sources (:func:`split_sources`).
        data_dir: the digits folder (the sources' root).
        seed: the run's seed.
        budget: steps, batch, width and learning rate.
        work: where the run's folder goes.
        mixing: ``ratio`` or ``batch``.
        heldout: the manifest evaluated (``None``: the test split).
    """
    sources = [_source(paths["image_text"], ("image", "text"), data_dir),
               _source(paths["image_audio"], ("image", "audio"), data_dir)]
    config = make_config(sources, seed, budget, work / f"{mixing}-{seed}", mixing)
    model_dir, seconds = _train(config)
    return _evaluate(model_dir, heldout or data_dir / "test.jsonl"), seconds


def run_frozen(paths: dict[str, Path], data_dir: Path, seed: int, budget: Budget,
               work: Path) -> tuple[dict[str, float], float]:
    """Image–text first, then audio bound to the frozen pair (``train.init_from``)."""
    first = make_config([_source(paths["image_text"], ("image", "text"), data_dir)], seed,
                        budget, work / f"frozen-it-{seed}", modalities=("image", "text"))
    it_model, first_seconds = _train(first)
    second = make_config([_source(paths["image_audio"], ("image", "audio"), data_dir)], seed,
                         budget, work / f"frozen-a-{seed}", init_from=it_model)
    model_dir, second_seconds = _train(second)
    return _evaluate(model_dir, data_dir / "test.jsonl"), first_seconds + second_seconds


def chance(data_dir: Path, task: str, manifest: Path | None = None) -> tuple[float, int]:
    """R@1 of a random ranking under label positives over the distinct gallery items, and
    the number of distinct queries (as :func:`evaluate_retrieval` builds them), on
    ``manifest`` (``None``: the test split)."""
    query, _, target = task.partition("->")
    rows = [json.loads(line) for line in (manifest or data_dir / "test.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    gallery = {str(r[target]): r["label"] for r in rows if r.get(target) is not None}
    queries = {str(r[query]): r["label"] for r in rows if r.get(query) is not None}
    labels = list(gallery.values())
    return float(np.mean([labels.count(v) / len(labels) for v in queries.values()])), \
        len(queries)


def run_variant(variant: str, seed: int, paths: dict[str, Path], data_dir: Path,
                budget: Budget, work: Path) -> tuple[dict[str, float], float]:
    """One (variant, seed): ``({task: R@1}, training seconds)``."""
    torch.set_num_threads(1)
    if variant == "frozen":
        return run_frozen(paths, data_dir, seed, budget, work)
    return run_mixture(paths, data_dir, seed, budget, work, variant)


def run(data_dir: Path, seeds: Sequence[int], budget: Budget, variants: Sequence[str],
        log: Callable[[str], None] = print, jobs: int = 1) -> Results:
    """Train and evaluate every variant (``ratio``, ``batch``, ``frozen``) for each seed.

    Args:
        data_dir: the built digits folder.
        seeds: the seeds of each variant.
        budget: what every run gets.
        variants: ``ratio``, ``batch`` and/or ``frozen``.
        log: receives one line per finished run.
        jobs: runs at once, each in its own process (one torch thread each).
    """
    results = Results()
    for task in TASKS:
        results.chance[task], results.queries[task] = chance(data_dir, task)
    runs = [(v, s) for v in variants for s in seeds]
    with tempfile.TemporaryDirectory(prefix="emergent_") as tmp:
        work = Path(tmp)
        paths = split_sources(data_dir, work / "sources")
        results.rows = {name: sum(1 for _ in p.open(encoding="utf-8"))
                        for name, p in paths.items()}
        if jobs > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                futures = [pool.submit(run_variant, v, s, paths, data_dir, budget, work)
                           for v, s in runs]
                outcomes = [f.result() for f in futures]
        else:
            outcomes = [run_variant(v, s, paths, data_dir, budget, work) for v, s in runs]
    for (variant, seed), (scores, seconds) in zip(runs, outcomes, strict=True):
        recall = results.recall.setdefault(variant, {task: [] for task in TASKS})
        for task in TASKS:
            recall[task].append(scores[task])
        results.seconds.setdefault(variant, []).append(seconds)
        log(f"{variant:<7} seed {seed}: " + "  ".join(
            f"{t} {scores[t]:.3f}" for t in TASKS) + f"  ({seconds:.0f} s)")
    return results


def _cell(values: Sequence[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def format_table(results: Results) -> str:
    """Markdown: one row per variant, mean ± std test R@1 per task, then chance."""
    lines = ["| variant | " + " | ".join(TASKS) + " | train s / run |",
             "|" + "---|" * (len(TASKS) + 2)]
    for variant, recall in results.recall.items():
        lines.append(f"| {VARIANT_LABELS.get(variant, variant)} | "
                     + " | ".join(_cell(recall[t]) for t in TASKS)
                     + f" | {np.mean(results.seconds[variant]):.0f} |")
    lines.append("| *chance* | " + " | ".join(f"{results.chance[t]:.3f}" for t in TASKS)
                 + " | |")
    return "\n".join(lines)


VARIANT_LABELS = {
    "ratio": "mixture, `mixing: ratio` (both sources in every batch)",
    "batch": "mixture, `mixing: batch` (one source per batch)",
    "frozen": "image–text first, then audio bound to it frozen (`train.init_from`)",
}


def report(results: Results, budget: Budget, seeds: Sequence[int], command: str,
           elapsed: float, limit: int | None) -> str:
    """The markdown page: setup, table, and what it shows."""
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    samples = "all 1,797 samples" if limit is None else f"the first {limit} samples"
    queries = ", ".join(f"{t} {results.queries[t]}" for t in TASKS)
    rows = ", ".join(f"`{k}` {v}" for k, v in results.rows.items())
    return f"""# Emergent alignment: audio -> text without a single audio–text row

Machine: {machine()} (shared with other jobs: times are indicative).\\
Command: `{command}` ({elapsed:.0f} s, {today}).

Data: `digits` built with `modalities=[image, audio, text]` from {samples}. The training
split is cut into two disjoint halves, two sources of one `data.train.kind: mixture`
(weights 1 and 1): {rows} rows. No training row holds audio and text together. Every run:
the encoders of `recipes/digits_clip.yaml` (`image_cnn_small`, `audio_ast_tiny`,
`text_transformer_tiny`), embeddings of width {budget.embed_dim}, pairwise `clip` over the
pairs present, {budget.steps} AdamW steps of batch {budget.batch_size} (peak lr {budget.lr},
{budget.warmup_steps} warmup steps, cosine){" per stage" if "frozen" in results.recall else ""}.
Test split, label positives (an item of the query's class is correct), ranked by the
model's score; mean ± std over seeds {list(seeds)}. Queries per task: {queries}.

{format_table(results)}

{chr(10).join(summary(results))}
"""


def summary(results: Results) -> list[str]:
    """Plain statements read off the table."""
    lines = []
    for variant, recall in results.recall.items():
        a2t, t2a = np.mean(recall["audio->text"]), np.mean(recall["text->audio"])
        base = results.chance["audio->text"]
        lines.append(f"- `{variant}`: audio->text R@1 {a2t:.3f} (chance {base:.3f}, "
                     f"{a2t / base:.1f}x), "
                     f"text->audio {t2a:.3f}; lowest seed audio->text "
                     f"{min(recall['audio->text']):.3f}.")
    if {"ratio", "batch"} <= set(results.recall):
        diffs = ", ".join(
            f"{t} {np.mean(results.recall['ratio'][t]) - np.mean(results.recall['batch'][t]):+.3f}"
            for t in TASKS)
        lines.append(f"- `ratio` minus `batch` (mean R@1): {diffs}.")
    if "frozen" in results.recall:
        lines.append("- `frozen` is not the same budget: two stages of the steps above (twice "
                     "the optimiser steps of a mixture run), and in its second stage every "
                     "row trains the audio tower against a fixed image space, where a "
                     "mixture run gives audio half of its rows and moves the image space "
                     "under it.")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "digits",
                        help="the digits folder (built with image,audio,text if missing)")
    parser.add_argument("--limit", type=int, default=None, help="samples to build")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--variants", default="ratio,batch",
                        help="ratio, batch and/or frozen (needs train.init_from)")
    parser.add_argument("--steps", type=int, default=Budget.steps)
    parser.add_argument("--batch-size", type=int, default=Budget.batch_size)
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once, each in its own process (one thread each)")
    parser.add_argument("--quick", action="store_true", help="a smoke run (tiny budget)")
    parser.add_argument("--out", type=Path, default=RESULT, help="the markdown page")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the data if needed, run every variant, print and write the page."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    budget = QUICK if args.quick else Budget(steps=args.steps, batch_size=args.batch_size)
    limit = QUICK_LIMIT if args.quick and args.limit is None else args.limit
    if not (args.data / "train.jsonl").is_file() or limit is not None:
        anymodal.build_dataset_files("digits", args.data, limit=limit,
                                     modalities=list(MODALITIES), progress=False)
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    results = run(args.data, seeds, budget, args.variants.split(","),
                  log=lambda line: print(line, flush=True), jobs=args.jobs)
    command = "python examples/emergent_alignment.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    page = report(results, budget, seeds, command.strip(), time.perf_counter() - started, limit)
    print(page)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
