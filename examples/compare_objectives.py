"""The objective study: every anymodal objective trained on the same digits data and budget.

Data: the ``digits`` data set (scikit-learn's 1,797 handwritten digits) built with three
modalities, ``image`` (PNG), ``audio`` (the digit's name spoken by espeak-ng in several
languages and voices) and ``text`` (a caption in several templates and languages), with its
fixed train/val/test split. Three modalities keep Symile's ``n_squared`` negatives (``N^3``
triples per batch) affordable on a CPU.

Every run trains the same encoders (those of ``recipes/digits_symile.yaml``) with the real
training loop, ``anymodal.training.train(anymodal.load_config(None, overrides))``, for the
same number of steps, batch size, optimiser and seed; only ``objective`` changes:
``clip`` over all pairs, ``clip`` anchored on text, ``siglip``, ``symile`` with ``n`` and
``n_squared`` negatives, ``gram``, ``mv_infonce`` and ``mv_dhel``. Each trained model is
evaluated on the test split with :func:`anymodal.retrieval.evaluation.evaluate_retrieval`,
which ranks with the objective's own ``score`` (for a two-modality query, Symile multiplies
the three embeddings, CLIP sums the two similarities). Text and audio carry only the class,
so a retrieved item is correct when it has the query's label (``positives="label"``); the
chance level of R@1 is the mean fraction of the gallery sharing the query's label.

Run from the repository root::

    make compare       # = examples/compare_objectives.py --jobs $(nproc) --cache data/digits3-cache
    .venv/bin/python examples/compare_objectives.py --quick   # a smoke run (a minute)

The study (11 objectives with and without subsets, and one GradCache row at 4x the cost;
3 seeds, 600 steps) took 82 minutes on 2 cores with
``--jobs 2 --cache ...`` (one run ~2 minutes); ``--jobs`` trains that many runs at once,
each in its own process with one torch thread, and the sample cache decodes each item once
for every run (the batches and the results are the same without it).

It prints a markdown table (mean ± std R@1 over seeds per task, training seconds per run)
and writes it, with the command and machine, to ``benchmarks/results/study_objectives.md``
and a bar plot to ``benchmarks/results/study_objectives.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import anymodal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_common import (  # the examples folder, put on the path above
    DIGITS_MODALITIES,
    SHARED_OBJECTIVES,
    machine,
    train_and_score,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODALITIES = ("image", "audio", "text")
#: Single-modality queries, then every two-modality (= all-others) query.
TASKS = ("audio->image", "text->image", "image->text", "image->audio", "audio->text",
         "text->audio", "audio+text->image", "image+text->audio", "image+audio->text")

#: (label, objective name, objective params): every objective trained on the same data.
OBJECTIVES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("clip (all pairs)", "clip", {"pairs": "all"}),
    ("clip (anchor text)", "clip", {"anchor": "text"}),
    *SHARED_OBJECTIVES,
    ("dcl", "dcl", {}),
    ("dclw", "dcl", {"weighted": True}),
)
#: GradCache rows (issue 19): ``(label, objective, params, batch size, micro-batch)``. The
#: batch is embedded in micro-batches and its exact gradient assembled
#: (``train.micro_batch``), so the row differs from its objective's only by the batch size.
GRADCACHE: tuple[tuple[str, str, dict[str, Any], int, int], ...] = (
    ("clip (all pairs) batch 256", "clip", {"pairs": "all"}, 256, 64),
)
QUICK_OBJECTIVES = ("clip (all pairs)", "symile (n)")
#: ``train.modality_dropout.p`` of subset-consistent training (rows hide modalities).
SUBSET_P = 0.3
SUBSET_SUFFIX = " +subsets"


@dataclass(frozen=True)
class Run:
    """One kind of run of the study (trained once per seed).

    Args:
        label: the table's row name.
        name: the objective; params: its params.
        subset_p: ``train.modality_dropout.p`` (0: off).
        batch_size: rows per step (None: the budget's).
        micro_batch: ``train.micro_batch`` (None: no gradient caching).
    """

    label: str
    name: str
    params: dict[str, Any]
    subset_p: float = 0.0
    batch_size: int | None = None
    micro_batch: int | None = None


def all_labels() -> list[str]:
    """Every row label ``--objectives`` accepts: :data:`OBJECTIVES`, then :data:`GRADCACHE`."""
    return [o[0] for o in OBJECTIVES] + [g[0] for g in GRADCACHE]


def variants(labels: Sequence[str], subsets: str) -> list[Run]:
    """The runs of ``labels``, with and/or without subset-consistent training.

    Args:
        labels: labels of :data:`OBJECTIVES` and :data:`GRADCACHE`.
        subsets: ``"off"`` (p = 0), ``"on"`` (p = :data:`SUBSET_P`, label suffixed
            ``+subsets``) or ``"both"``. GradCache rows are trained with ``p = 0`` only:
            they answer what the batch size buys, one comparison.
    """
    out = []
    for label, name, params in OBJECTIVES:
        if label not in labels:
            continue
        if subsets in ("off", "both"):
            out.append(Run(label, name, params))
        if subsets in ("on", "both"):
            out.append(Run(label + SUBSET_SUFFIX, name, params, SUBSET_P))
    out += [Run(label, name, params, 0.0, batch, micro)
            for label, name, params, batch, micro in GRADCACHE if label in labels]
    return out

#: The encoders and modality options of ``recipes/digits_symile.yaml`` (small, fast on CPU).
MODALITY_CONFIG = DIGITS_MODALITIES


@dataclass(frozen=True)
class Budget:
    """What every (objective, seed) run gets.

    Args:
        steps: optimiser steps.
        batch_size: rows per step (capped at the training rows).
        embed_dim: width of the shared embedding space.
        lr: AdamW peak learning rate (warmup, then cosine decay).
        warmup_steps: linear warmup steps.
    """

    steps: int = 600
    batch_size: int = 64
    embed_dim: int = 64
    lr: float = 2e-3
    warmup_steps: int = 10


QUICK = Budget(steps=4, batch_size=16)
QUICK_LIMIT = 30


@dataclass
class StudyResult:
    """R@1 and times of a study.

    Attributes:
        labels: objective labels, in row order.
        tasks: task names, in column order.
        recall: label -> ``[len(tasks), seeds]`` array of test R@1.
        seconds: label -> ``[seeds]`` training seconds (the ``train`` call).
        chance: task -> R@1 of a random ranking.
        queries: task -> number of test queries.
        train_rows: rows of the training split.
    """

    labels: list[str]
    tasks: list[str]
    recall: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, np.ndarray] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    train_rows: int = 0


def _count_rows(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def chance_recall(manifest: Path, task: str) -> tuple[float, int]:
    """R@1 of a random ranking under label positives, and the number of queries.

    The gallery is the distinct target items and the queries the distinct query tuples,
    as :func:`evaluate_retrieval` builds them; a random ranking puts a correct item first
    with probability (gallery items of the query's label) / (gallery size).
    """
    query_part, _, target = task.partition("->")
    query = query_part.split("+")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    gallery: dict[str, Any] = {}
    queries: dict[tuple[str, ...], Any] = {}
    for row in rows:
        if row.get(target) is None:
            continue
        gallery.setdefault(str(row[target]), row["label"])
        if all(row.get(m) is not None for m in query):
            queries.setdefault(tuple(str(row[m]) for m in query), row["label"])
    labels = list(gallery.values())
    fractions = [labels.count(label) / len(labels) for label in queries.values()]
    return float(np.mean(fractions)), len(fractions)


def make_config(name: str, params: dict[str, Any], seed: int, train_manifest: Path,
                budget: Budget, batch_size: int, output_dir: Path,
                subset_p: float = 0.0, micro_batch: int | None = None,
                cache: Path | None = None) -> Any:
    """The validated config of one run: same everything but the objective, ``subset_p``
    (``train.modality_dropout.p``: the fraction of rows that hide some modalities) and, for
    the GradCache rows, the batch size and ``train.micro_batch``. ``cache``: the sample
    cache's folder (``data.cache``; the decoded items are read, not decoded again, from the
    second epoch on: the same batches, only faster)."""
    if name == "symile":
        params = {**params, "seed": seed}  # the "n" permutations follow the run's seed
    overrides = {
        "name": f"compare_{name}",
        "modalities": MODALITY_CONFIG,
        "model": {"embed_dim": budget.embed_dim},
        "objective": {"name": name, "params": params},
        "data": {"train": {"kind": "manifest", "path": str(train_manifest)}, "val": None,
                 "batch_size": batch_size, "num_workers": 0,
                 "cache": None if cache is None else {"dir": str(cache)}},
        "optim": {"lr": budget.lr, "warmup_steps": min(budget.warmup_steps, budget.steps)},
        # one thread: the loader and the tiny encoders are fastest so on a shared 2-core CPU
        "train": {"max_steps": budget.steps, "output_dir": str(output_dir), "seed": seed,
                  "overwrite": True,
                  "eval_every": 0, "checkpoint_every": 0, "log_every": max(budget.steps, 1),
                  "threads": 1, "cpu": True, "micro_batch": micro_batch,
                  "modality_dropout": {"p": subset_p, "min_present": 2}},
        "logging": {"progress": False, "trackers": []},
    }
    return anymodal.load_config(None, overrides)


def run_one(run: Run, seed: int, data_dir: Path, budget: Budget, batch_size: int,
            work_dir: Path, cache: Path | None = None) -> tuple[dict[str, float], float]:
    """Train one model and evaluate it on the test split; ``({task: R@1}, seconds)``.

    Args:
        run: what to train; its ``batch_size`` (if set) replaces ``batch_size``.
        seed: the run's seed; data_dir: the digits build; budget: steps, lr, warmup.
        batch_size: rows per step; work_dir: where the run's folder goes.
        cache: the sample cache's folder (None: decode every epoch).
    """
    batch = run.batch_size or batch_size
    output_dir = work_dir / (f"{run.name}-{'-'.join(map(str, run.params.values()))}"
                             f"-p{run.subset_p}-b{batch}-{seed}")
    config = make_config(run.name, run.params, seed, data_dir / "train.jsonl", budget, batch,
                         output_dir, run.subset_p, run.micro_batch, cache)
    return train_and_score(config, data_dir / "test.jsonl", TASKS)


def budget_key(budget: Budget) -> str:
    """The budget as text: records of another budget are never mixed into a table."""
    return (f"steps={budget.steps},batch={budget.batch_size},dim={budget.embed_dim},"
            f"lr={budget.lr},warmup={budget.warmup_steps}")


def load_records(path: Path, budget: Budget) -> list[dict[str, Any]]:
    """The finished runs recorded in ``path`` (one JSON object a line) under ``budget``."""
    if not path.is_file():
        return []
    key = budget_key(budget)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    return [r for r in records if r.get("budget") == key]


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one finished run to ``path``: a single ``write`` of one line in append mode,
    so that several study processes can share the file, and a killed study loses at most
    the run in progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def build_data(data_dir: Path, limit: int | None) -> Path:
    """Build (or reuse) the three-modality digits set; returns its directory."""
    anymodal.build_dataset_files("digits", data_dir, limit=limit, modalities=list(MODALITIES),
                                 progress=False)
    return data_dir


def warm_up(data_dir: Path) -> None:
    """Load and transform one item of each modality, so that the first run's time does not
    include the lazy imports of the plugins' libraries (torchvision, soundfile...)."""
    row = json.loads((data_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    for key in MODALITIES:
        spec = anymodal.get_modality(key, **MODALITY_CONFIG[key]["options"])
        source = row[key] if key == "text" else str(data_dir / row[key])
        for train in (True, False):
            spec.transform(spec.load(source), train)


def run_study(data_dir: Path, seeds: int, budget: Budget, labels: Sequence[str],
              log: Callable[[str], None] = print, subsets: str = "both",
              records: Path | None = None, train: bool = True,
              cache: Path | None = None, jobs: int = 1) -> StudyResult:
    """Train and evaluate every objective in ``labels`` for ``seeds`` seeds, with and/or
    without subset-consistent training (``subsets``, see :func:`variants`).

    Args:
        records: a JSON-lines file of finished runs: each run is appended when it ends, and
            a (label, seed) already there under the same budget is not trained again, so an
            interrupted study resumes.
        train: False: only tabulate what ``records`` holds.
        cache: the sample cache's folder, shared by every run (None: none).
        jobs: runs trained at once, each in its own process with one torch thread.

    The table holds every chosen row with at least one finished seed (rows have as many
    seeds as finished: the report says how many).
    """
    chosen = variants(labels, subsets)
    train_rows = _count_rows(data_dir / "train.jsonl")
    batch_size = min(budget.batch_size, train_rows)
    done = {(r["label"], r["seed"]): r for r in load_records(records, budget)} if records \
        else {}
    pending = [(run, seed) for run in chosen for seed in range(seeds)
               if (run.label, seed) not in done]
    if train and pending:
        warm_up(data_dir)
        with tempfile.TemporaryDirectory(prefix="compare_objectives_") as work:
            args = [(run, seed, data_dir, budget, batch_size, Path(work), cache)
                    for run, seed in pending]
            for (run, seed), (scores, seconds) in zip(pending, _train_all(args, jobs)):
                record = {"label": run.label, "seed": seed, "recall": scores,
                          "seconds": seconds, "budget": budget_key(budget)}
                done[(run.label, seed)] = record
                if records:
                    append_record(records, record)
                log(f"{run.label:<20} seed {seed}: " + "  ".join(
                    f"{task} {scores[task]:.3f}" for task in TASKS) + f"  ({seconds:.1f} s)")
    return tabulate(data_dir, chosen, seeds, done, train_rows)


def _one_thread() -> None:
    torch.set_num_threads(1)


def _train_all(args: list[tuple[Any, ...]], jobs: int
               ) -> Iterator[tuple[dict[str, float], float]]:
    """:func:`run_one` of each argument tuple, in order, ``jobs`` at a time.

    Several jobs run in spawned processes (a forked one would inherit torch's thread
    pool); each result is yielded as soon as it and every earlier one are finished, so a
    killed study keeps what it has recorded.
    """
    if jobs <= 1:
        for arg in args:
            yield run_one(*arg)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
        yield from pool.map(run_one, *zip(*args))


def tabulate(data_dir: Path, chosen: Sequence[Run], seeds: int,
             done: dict[tuple[str, int], dict[str, Any]], train_rows: int) -> StudyResult:
    """The :class:`StudyResult` of the finished runs ``done`` (keyed by label and seed)."""
    result = StudyResult(labels=[], tasks=list(TASKS), train_rows=train_rows)
    for task in TASKS:
        result.chance[task], result.queries[task] = chance_recall(data_dir / "test.jsonl", task)
    for run in chosen:
        finished = [done[(run.label, seed)] for seed in range(seeds)
                    if (run.label, seed) in done]
        if not finished:
            continue
        result.labels.append(run.label)
        result.recall[run.label] = np.array([[r["recall"][task] for r in finished]
                                             for task in TASKS])
        result.seconds[run.label] = np.array([r["seconds"] for r in finished])
    return result


def _mean_std(values: np.ndarray) -> str:
    return f"{values.mean():.3f} ± {values.std():.3f}"


def format_table(result: StudyResult) -> str:
    """Markdown: one row per objective, mean ± std R@1 per task and train seconds per run."""
    header = "| objective | " + " | ".join(result.tasks) + " | seeds | train s / run |"
    lines = [header, "|" + "---|" * (len(result.tasks) + 3)]
    for label in result.labels:
        cells = [_mean_std(result.recall[label][t]) for t in range(len(result.tasks))]
        secs = result.seconds[label]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {len(secs)} | "
                     f"{secs.mean():.1f} ± {secs.std():.1f} |")
    lines.append("| *chance* | " + " | ".join(f"{result.chance[t]:.3f}" for t in result.tasks)
                 + " | | |")
    return "\n".join(lines)


def summarise(result: StudyResult) -> list[str]:
    """Plain statements read off the table: the best objective per task beside chance, and
    what the second query modality adds for each objective (``audio+text->image`` against
    the better of ``audio->image`` and ``text->image``)."""
    lines = []
    for t, task in enumerate(result.tasks):
        means = {label: result.recall[label][t].mean() for label in result.labels}
        best = max(means, key=lambda label: means[label])
        worst = min(means, key=lambda label: means[label])
        lines.append(f"- `{task}`: best `{best}` {means[best]:.3f}, worst `{worst}` "
                     f"{means[worst]:.3f}, chance {result.chance[task]:.3f}.")
    if {"audio->image", "text->image", "audio+text->image"} <= set(result.tasks):
        index = {task: t for t, task in enumerate(result.tasks)}
        gains = []
        for label in result.labels:
            recall = result.recall[label].mean(axis=1)
            single = max(recall[index["audio->image"]], recall[index["text->image"]])
            gains.append(f"`{label}` {recall[index['audio+text->image']] - single:+.3f}")
        lines.append("- `audio+text->image` minus the better single-modality query "
                     "(mean R@1): " + ", ".join(gains) + ".")
    return lines + kind_summary(result)


def kind_summary(result: StudyResult) -> list[str]:
    """Mean R@1 over the one-modality and over the two-modality (all-others) queries per
    objective, and what subset-consistent training changes where both runs exist."""
    kinds = {"one-modality": [t for t, task in enumerate(result.tasks) if "+" not in task],
             "two-modality": [t for t, task in enumerate(result.tasks) if "+" in task]}
    kinds = {kind: index for kind, index in kinds.items() if index}
    if not kinds:
        return []
    means = {label: {kind: float(result.recall[label][index].mean())
                     for kind, index in kinds.items()} for label in result.labels}
    chance = {kind: float(np.mean([result.chance[result.tasks[t]] for t in index]))
              for kind, index in kinds.items()}
    lines = ["- mean R@1 by query kind (" + ", ".join(
        f"{kind} chance {value:.3f}" for kind, value in chance.items()) + "): " + "; ".join(
        f"`{label}` " + " / ".join(f"{means[label][kind]:.3f}" for kind in kinds)
        for label in result.labels) + "."]
    for label in result.labels:
        on = label + SUBSET_SUFFIX
        if on in means:
            lines.append(f"- subset-consistent training, `{label}`: " + ", ".join(
                f"{kind} {means[on][kind] - means[label][kind]:+.3f}" for kind in kinds) + ".")
    return lines


def plot(result: StudyResult, path: Path) -> None:
    """Mean R@1 by query kind (one-modality, two-modality), one panel each: per objective a
    bar without and one with subset-consistent training (error bars: std over seeds of the
    seed's mean over the kind's tasks), chance dashed. The table has every task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {"one-modality queries": [t for t, task in enumerate(result.tasks) if "+" not in task],
             "two-modality (all-others) queries": [t for t, task in enumerate(result.tasks)
                                                   if "+" in task]}
    kinds = {kind: index for kind, index in kinds.items() if index}
    bases = list(dict.fromkeys(label.removesuffix(SUBSET_SUFFIX) for label in result.labels))
    fig, axes = plt.subplots(1, len(kinds), figsize=(7 * len(kinds), 5), squeeze=False)
    x = np.arange(len(bases))
    for ax, (kind, index) in zip(axes[0], kinds.items()):
        for shift, suffix, name in ((-0.2, "", "subsets off"), (0.2, SUBSET_SUFFIX, "+subsets")):
            per_seed = [result.recall[b + suffix][index].mean(axis=0)
                        if b + suffix in result.recall else np.full(1, np.nan) for b in bases]
            ax.bar(x + shift, [v.mean() for v in per_seed], 0.4, label=name, capsize=2,
                   yerr=[v.std() for v in per_seed])
        chance = float(np.mean([result.chance[result.tasks[t]] for t in index]))
        ax.axhline(chance, color="black", linestyle="dashed", label="chance")
        ax.set_xticks(x, bases, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(kind)
        ax.set_ylabel("mean test R@1 (label positives)")
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("digits (image, audio, text): every objective on the same data and budget")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: StudyResult, budget: Budget, seeds: int, limit: int | None,
                 command: str, elapsed: float, md_path: Path, png_path: Path,
                 notes: str = "") -> str:
    """Write the markdown report and the plot; return the markdown.

    Args:
        notes: markdown placed after the description (how the budget was chosen, what
            was cut): measured facts the table alone does not say.
    """
    notes = f"\n{notes.strip()}\n" if notes.strip() else ""
    plot(result, png_path)
    try:
        shown = png_path.resolve().relative_to(REPO)
    except ValueError:
        shown = png_path
    times = ", ".join(f"{label} {result.seconds[label].sum():.0f} s" for label in result.labels)
    queries = ", ".join(f"{t} {result.queries[t]}" for t in result.tasks)
    samples = "all 1,797" if limit is None else f"the first {limit}"
    text = f"""# Objective study: digits in three modalities

Machine: {machine()}.\\
Command: `{command}` ({elapsed:.0f} s, {datetime.date.today().isoformat()}).

Data: `digits` built with `modalities=[image, audio, text]` from {samples} samples
({result.train_rows} training rows; test queries per task: {queries}). Every run: the
encoders of `recipes/digits_symile.yaml` (`image_cnn_small` on 32 px, `audio_ast_tiny` on
1 s of 64-band mel, `text_transformer_tiny`), embeddings of width {budget.embed_dim},
{budget.steps} AdamW steps of batch {min(budget.batch_size, result.train_rows)} (peak lr
{budget.lr}, {budget.warmup_steps} warmup steps, cosine), trained with
`anymodal.training.train`; only the objective changes. Test R@1 with label positives
(a retrieved item of the query's class is correct), ranked by each objective's own score;
mean ± std over {seeds} seed(s). Training time per objective (all seeds): {times}.

Every objective trains with its own defaults: `siglip` and `mv_infonce` centre each head's
output on the batch mean (`model.center`, their default) and `mv_infonce` starts at logit
scale 5 (its `model.logit_scale_init` default), the others at 1/0.07 uncentred. The
GradCache row (`{', '.join(g[0] for g in GRADCACHE)}`) embeds its batch in micro-batches
(`train.micro_batch`) and trains on the exact large-batch gradient, for the same number of
steps (so it also sees more rows). Differences smaller than the std are noise.
{notes}
How each objective ranks (its `score`): `clip`, `siglip`, `mv_*`, `infoloob`, `dcl` sum the
query modalities' similarities to the candidate; `symile` takes the multilinear inner
product of the query embeddings, the model's learned missing embedding of the modality in
neither the query nor the candidates, and the candidate (`<q * miss, c>` for a one-modality
query: the way training scored rows without that modality); `gram` ranks by minus the
volume spanned by the query and candidate embeddings. Rows labelled `+subsets` were
trained with `train.modality_dropout.p={SUBSET_P}` (each row hides a random subset of its
modalities, at least two kept), the others with it off (`p=0`).

{format_table(result)}

Measured (from the table):

{chr(10).join(summarise(result))}

![objectives]({shown})
"""
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text, encoding="utf-8")
    return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per objective (default 3; 1 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run")
    parser.add_argument("--limit", type=int, default=None,
                        help="build only the first N digits (default: all 1,797)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data directory (default: data/digits3[_limitN])")
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="where study_objectives.md and .png go")
    parser.add_argument("--subsets", choices=("both", "on", "off"), default="both",
                        help="train each objective with subset-consistent training (on), "
                             "without (off) or both (default)")
    parser.add_argument("--objectives", default=None,
                        help="comma-separated labels of OBJECTIVES and GRADCACHE to run "
                             "(default: all)")
    parser.add_argument("--records", type=Path, default=None,
                        help="JSON-lines file of finished runs (default: OUT_DIR/"
                             "study_objectives.jsonl): appended after each run, and runs "
                             "already there (same budget) are skipped")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, one process and one torch thread each "
                             "(default 1; the number of cores is a good choice)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="a sample-cache folder shared by the runs (data.cache): items "
                             "are decoded once, not every epoch; the results are the same")
    parser.add_argument("--notes", type=Path, default=None,
                        help="a markdown file whose text goes into the report")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: tabulate the finished runs of --records")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {', '.join(QUICK_OBJECTIVES)}, {QUICK.steps} steps, "
                             f"limit {QUICK_LIMIT}")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.seeds < 1 or args.jobs < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--seeds, --jobs and --steps must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> StudyResult:
    args = parse_args(argv)
    budget = QUICK if args.quick else Budget()
    if args.steps is not None:
        budget = Budget(**{**budget.__dict__, "steps": args.steps})
    limit = args.limit if args.limit is not None else (QUICK_LIMIT if args.quick else None)
    data_dir = args.data or REPO / "data" / ("digits3" if limit is None
                                             else f"digits3_limit{limit}")
    labels = QUICK_OBJECTIVES if args.quick else all_labels()
    if args.objectives:
        labels = tuple(label.strip() for label in args.objectives.split(","))
        unknown = set(labels) - set(all_labels())
        if unknown:
            raise SystemExit(f"unknown objectives {sorted(unknown)}; choose from "
                             f"{all_labels()}")
    torch.set_num_threads(1)
    started = time.perf_counter()
    build_data(data_dir, limit)
    records = args.records or args.out_dir / "study_objectives.jsonl"
    result = run_study(data_dir, args.seeds, budget, labels, subsets=args.subsets,
                       records=records, train=not args.report_only, cache=args.cache,
                       jobs=args.jobs)
    elapsed = time.perf_counter() - started
    table = format_table(result)
    print(table)
    command = " ".join([".venv/bin/python examples/compare_objectives.py",
                        *(argv if argv is not None else sys.argv[1:])])
    if args.report_only:  # the runs' own time, not this call's
        elapsed = float(sum(result.seconds[label].sum() for label in result.labels))
    notes = args.notes.read_text(encoding="utf-8") if args.notes else ""
    write_report(result, budget, args.seeds, limit, command, elapsed,
                 args.out_dir / "study_objectives.md", args.out_dir / "study_objectives.png",
                 notes)
    print(f"wrote {args.out_dir / 'study_objectives.md'} and study_objectives.png")
    return result


if __name__ == "__main__":
    main()
