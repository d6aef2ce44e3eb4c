"""The Symile paper's synthetic XOR experiment, run with every anymodal objective.

Data (Saporta et al., "Contrasting with Symile", NeurIPS 2024, synthetic experiment):
``a, b ~ Bernoulli(0.5)^d``, one ``i ~ Bernoulli(p)`` per sample (shared by the ``d``
coordinates) and ``c = a XOR b`` when ``i = 1``, else ``c = a``. The task: given ``(a, c)``,
pick ``b`` among all ``2^d`` binary vectors. When ``i = 1``, ``b = a XOR c`` is determined;
when ``i = 0`` it is independent of ``(a, c)``, so the best possible accuracy is
``p + (1 - p) / 2^d``. Every *pair* of ``a, b, c`` is independent whatever ``p`` (``c`` is
uniform given ``b``), so a model that only compares pairs should stay at chance ``1/2^d``;
only a higher-order objective can use the three-way dependence.

For each ``p``, seed and objective the script trains a fresh
:class:`anymodal.MultiModalModel` with three ``vector`` modalities (``a``, ``b``, ``c``,
encoder ``vector_mlp``) on the same training set, with the same steps, batch size and
optimiser, and reports the test accuracy when the candidates are ranked by the objective's
own ``score`` (``model.score({"a": ea, "c": ec}, eb_all)``): the summed similarity for
``clip`` and ``mv_infonce``, the multilinear inner product for ``symile``, minus the Gram
volume for ``gram``.

Why a small loop here rather than ``anymodal.training.train``: the study trains 90 tiny
models; the full loop (Accelerate, manifests of ``.npy`` files, checkpoints) costs more
per run than the training itself. This loop calls the same public pieces the full loop
does: ``load_config`` to build and validate the experiment, ``MultiModalModel(config)``,
``model(batch, return_loss=True)`` on batches in the model's batch format, and
``model.score`` for evaluation. Vectors are fed as ``±1`` (``2x - 1``); that changes
nothing but the encoders' first bias.

Run from the repository root::

    .venv/bin/python examples/symile_xor.py            # the study (a few minutes, 2 CPUs)
    .venv/bin/python examples/symile_xor.py --quick    # a smoke run (seconds)

It prints a markdown table (mean ± std accuracy over seeds, rows ``p``, one column per
objective and the optimum) and writes it, with the command and machine, to
``benchmarks/results/study_xor.md`` and the plot to ``benchmarks/results/study_xor.png``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

import anymodal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_common import machine  # the examples folder, put on the path above

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

#: (label, objective name, objective params): every objective trained on the same data.
OBJECTIVES: tuple[tuple[str, str, dict], ...] = (
    ("clip", "clip", {"pairs": "all"}),
    ("symile (n)", "symile", {"negatives": "n"}),
    ("symile (n_squared)", "symile", {"negatives": "n_squared"}),
    ("gram", "gram", {}),
    ("mv_infonce", "mv_infonce", {}),
)
KEYS = ("a", "b", "c")


@dataclass(frozen=True)
class Budget:
    """What every (objective, p, seed) run gets.

    Args:
        steps: optimiser steps.
        batch_size: rows per step (Symile's ``n_squared`` loss sums over batch² tuples).
        n_train: training rows (one fixed set per (p, seed), shared by the objectives).
        n_test: test rows.
        embed_dim: width of the shared embedding space.
        hidden: width of the encoders' hidden layer (and of their output).
        depth: hidden layers of each ``vector_mlp`` encoder.
        lr: AdamW learning rate (cosine decay to 0, no weight decay).
    """

    steps: int = 300
    batch_size: int = 64
    n_train: int = 10_000
    n_test: int = 2_000
    embed_dim: int = 16
    hidden: int = 32
    depth: int = 1
    lr: float = 3e-3


#: ``--quick``: a smoke run of seconds (Symile at p = 1 already far above CLIP after 100 steps).
QUICK = Budget(steps=100, n_train=2_000, n_test=512)
QUICK_PS = (0.0, 1.0)


@dataclass
class StudyResult:
    """Accuracies of a study.

    Attributes:
        d: bits per vector.
        ps: the values of ``p``.
        labels: objective labels, in column order.
        accuracy: label -> array ``[len(ps), seeds]`` of test accuracies.
        optimum: ``[len(ps)]``, ``p + (1 - p) / 2^d``.
        seconds: label -> training and evaluation time summed over its runs.
    """

    d: int
    ps: list[float]
    labels: list[str]
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)
    optimum: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- data


def optimum(p: float, d: int) -> float:
    """Best possible accuracy: right when ``i = 1``, a guess among ``2^d`` when ``i = 0``."""
    return p + (1.0 - p) / 2**d


def xor_data(n: int, d: int, p: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``n`` samples of the XOR task.

    Returns:
        ``{"a", "b", "c"}``: ``LongTensor[n, d]`` of 0/1; ``"i"``: ``BoolTensor[n]``.
    """
    a = torch.randint(0, 2, (n, d), generator=generator)
    b = torch.randint(0, 2, (n, d), generator=generator)
    i = torch.rand(n, generator=generator) < p
    c = torch.where(i.unsqueeze(1), a ^ b, a)
    return {"a": a, "b": b, "c": c, "i": i}


def all_candidates(d: int) -> torch.Tensor:
    """Every binary vector of length ``d``, ``LongTensor[2^d, d]`` (row k = bits of k)."""
    codes = torch.arange(2**d).unsqueeze(1)
    return (codes >> torch.arange(d - 1, -1, -1)) & 1


def as_input(bits: torch.Tensor) -> torch.Tensor:
    """0/1 bits as the encoders' ``±1`` float input."""
    return bits.float() * 2 - 1


def make_batch(data: dict[str, torch.Tensor], rows: torch.Tensor) -> anymodal.Batch:
    """The model's batch format for ``rows`` of ``data`` (every modality present)."""
    present = torch.ones(len(rows), dtype=torch.bool)
    batch: dict = {key: as_input(data[key][rows]) for key in KEYS}
    batch["present"] = {key: present for key in KEYS}
    return batch


# ----------------------------------------------------------------------------- model


def make_config(objective: str, params: dict, d: int, budget: Budget) -> DictConfig:
    """A validated experiment config: three ``vector`` modalities of length ``d``."""
    encoder = {"in_dim": d, "hidden": budget.hidden, "depth": budget.depth,
               "width": budget.hidden}
    modality = {"modality": "vector", "encoder": "vector_mlp", "options": {"dim": d},
                "params": encoder}
    return anymodal.load_config(None, {
        "name": f"xor-{objective}",
        "modalities": {key: modality for key in KEYS},
        "model": {"embed_dim": budget.embed_dim},
        "objective": {"name": objective, "params": params},
    })


def train_model(config: DictConfig, train: dict[str, torch.Tensor], budget: Budget,
                seed: int) -> anymodal.MultiModalModel:
    """Train a fresh model on ``train`` with AdamW and a cosine schedule."""
    torch.manual_seed(seed)
    model = anymodal.MultiModalModel(config)
    negatives = getattr(model.objective, "generator", None)
    if isinstance(negatives, torch.Generator):  # Symile's negative sampling follows the seed
        negatives.manual_seed(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, budget.steps)
    generator = torch.Generator().manual_seed(seed)
    n = train["a"].shape[0]
    for _ in range(budget.steps):
        rows = torch.randint(0, n, (budget.batch_size,), generator=generator)
        loss = model(make_batch(train, rows), return_loss=True)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: anymodal.MultiModalModel, test: dict[str, torch.Tensor]) -> float:
    """Fraction of test rows whose ``b`` is ranked first among all ``2^d`` candidates by
    ``model.score({"a": ea, "c": ec}, eb_all)``."""
    d = test["a"].shape[1]
    candidates = all_candidates(d)
    embedded = model.embed_batch({key: as_input(test[key]) for key in ("a", "c")})
    eb_all = model.encode("b", as_input(candidates))
    scores = model.score({"a": embedded["a"], "c": embedded["c"]}, eb_all)  # [n, 2^d]
    predicted = candidates[scores.argmax(dim=1)]
    correct = (predicted == test["b"]).all(dim=1)
    return correct.sum().item() / correct.numel()


# ----------------------------------------------------------------------------- study


def run_study(d: int, seeds: int, budget: Budget, ps: Sequence[float] = PS,
              objectives: Sequence[tuple[str, str, dict]] = OBJECTIVES,
              log: Callable[[str], None] = print) -> StudyResult:
    """Train every objective for every ``p`` and seed; see the module docstring.

    Data seed of (p index k, seed s): ``1000 * s + k`` (train) and that ``+ 500`` (test);
    the seed of the model's initialisation, the batch order and Symile's negatives is
    ``s``, the same for every objective.
    """
    labels = [label for label, _, _ in objectives]
    result = StudyResult(d=d, ps=list(ps), labels=labels,
                         optimum=[optimum(p, d) for p in ps])
    for label in labels:
        result.accuracy[label] = np.zeros((len(ps), seeds))
        result.seconds[label] = 0.0
    # One config per objective (building and validating one takes a good fraction of a
    # second of OmegaConf work); every run builds a fresh model from it.
    configs = {label: make_config(name, params, d, budget) for label, name, params in objectives}
    for k, p in enumerate(ps):
        for s in range(seeds):
            train = xor_data(budget.n_train, d, p, torch.Generator().manual_seed(1000 * s + k))
            test = xor_data(budget.n_test, d, p,
                            torch.Generator().manual_seed(1000 * s + k + 500))
            for label in labels:
                start = time.perf_counter()
                model = train_model(configs[label], train, budget, seed=s)
                acc = accuracy(model, test)
                result.accuracy[label][k, s] = acc
                result.seconds[label] += time.perf_counter() - start
                log(f"p={p:.1f} seed={s} {label:<20} accuracy {acc:.3f}")
    return result


# ----------------------------------------------------------------------------- report


def format_table(result: StudyResult) -> str:
    """Markdown: rows ``p``, columns objectives (mean ± std over seeds) and the optimum."""
    header = ["p", *result.labels, "optimum"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k, p in enumerate(result.ps):
        cells = [f"{p:.1f}"]
        for label in result.labels:
            runs = result.accuracy[label][k]
            cells.append(f"{runs.mean():.3f} ± {runs.std():.3f}")
        cells.append(f"{result.optimum[k]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(result: StudyResult, near: float = 0.02, close: float = 0.05) -> list[str]:
    """One line per objective: at chance (mean within ``near`` of ``1/2^d`` at every p),
    near the optimum (within ``close`` of it at every p), or in between."""
    chance = 1 / 2**result.d
    best = np.array(result.optimum)
    lines = []
    for label in result.labels:
        mean = result.accuracy[label].mean(axis=1)
        gap = best - mean
        worst = int(gap.argmax())
        if np.abs(mean - chance).max() <= near:
            verdict = f"at chance at every p (within {near} of {chance:.3f})"
        elif gap.max() <= close:
            verdict = (f"within {close} of the optimum at every p (largest gap "
                       f"{gap[worst]:.3f}, at p = {result.ps[worst]:.1f})")
        else:
            top = int(mean.argmax())
            verdict = (f"in between: best {mean[top]:.3f} at p = {result.ps[top]:.1f}, "
                       f"largest gap to the optimum {gap[worst]:.3f} at p = "
                       f"{result.ps[worst]:.1f}")
        lines.append(f"- `{label}`: {verdict}.")
    return lines


#: Line styles that keep overlapping curves visible (hollow large markers under small ones).
STYLES: dict[str, dict] = {
    "clip": {"marker": "o", "ms": 9, "mfc": "none", "ls": "-"},
    "symile (n)": {"marker": "s", "ms": 9, "mfc": "none", "ls": "-", "lw": 2.5},
    "symile (n_squared)": {"marker": "D", "ms": 4, "ls": "--"},
    "gram": {"marker": "^", "ms": 6, "ls": "-"},
    "mv_infonce": {"marker": "v", "ms": 5, "ls": "--"},
}


def plot(result: StudyResult, path: Path) -> None:
    """Accuracy against ``p`` per objective (mean ± std band), the optimum and chance;
    the right panel zooms on the bottom of the scale, where the pairwise objectives sit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    ps = np.array(result.ps)
    fine = np.linspace(0, 1, 101)
    chance = 1 / 2**result.d
    top = max(0.2, 4 * chance)
    for ax, ylim in zip(axes, ((-0.02, 1.02), (0.0, top))):
        ax.plot(fine, [optimum(p, result.d) for p in fine], color="black", lw=2, ls="--",
                label=r"optimum $p + (1-p)/2^d$", zorder=1)
        ax.axhline(chance, color="grey", lw=1, ls=":", label=r"chance $1/2^d$")
        for n, label in enumerate(result.labels):
            runs = result.accuracy[label]
            mean, std = runs.mean(axis=1), runs.std(axis=1)
            style = {"lw": 1.5, **STYLES.get(label, {"marker": "o", "ms": 5})}
            line = ax.plot(ps, mean, label=label, zorder=2 + n, **style)[0]
            ax.fill_between(ps, mean - std, mean + std, alpha=0.15, color=line.get_color())
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(*ylim)
        ax.set_xlabel("p (fraction of samples with c = a XOR b)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy (b among $2^{result.d}$ candidates)")
    axes[0].set_title(f"Symile XOR experiment, d = {result.d} (mean ± std over seeds)")
    axes[1].set_title(f"zoom: accuracy below {top:.2f}")
    axes[0].legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_report(result: StudyResult, budget: Budget, seeds: int, command: str,
                 elapsed: float, md_path: Path, png_path: Path) -> str:
    """Write the markdown report and the plot; return the markdown."""
    plot(result, png_path)
    table = format_table(result)
    times = ", ".join(f"{label} {result.seconds[label]:.0f} s" for label in result.labels)
    try:
        image = png_path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        image = png_path.name
    text = "\n".join([
        "# Symile's XOR experiment: higher-order dependence",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `{command}` ({elapsed:.0f} s, {datetime.date.today().isoformat()}).",
        "",
        f"`a, b ~ Bernoulli(0.5)^{result.d}`, `i ~ Bernoulli(p)` per sample, "
        "`c = a XOR b` if `i` else `a`; predict `b` from `(a, c)` among all "
        f"{2**result.d} candidates, ranked by each objective's own `score`. "
        f"Mean ± std test accuracy over {seeds} seeds ({budget.n_test} test rows each); "
        f"every run: {budget.steps} AdamW steps of batch {budget.batch_size} on "
        f"{budget.n_train} training rows, `vector_mlp` encoders (depth {budget.depth}, "
        f"width {budget.hidden}), embeddings of width {budget.embed_dim}, learned logit "
        f"scale. Chance is {1 / 2**result.d:.3f}. Time per objective (all runs): {times}.",
        "",
        "Every pair of `a, b, c` is independent whatever `p` (given `b`, `c` is uniform), "
        "so an objective that scores pairs (`clip` and `mv_infonce` rank by the summed "
        "similarity `(ea + ec)·eb`) has nothing to learn and should stay at chance; the "
        "dependence is three-way, which Symile's multilinear inner product `Σ ea·eb·ec` "
        "can express. GRAM ranks by the volume spanned by `(eb, ea, ec)`, a nonlinear "
        "function of the three pairwise cosines.",
        "",
        table,
        "",
        "Measured (from the table):",
        "",
        *summarise(result),
        "",
        f"![XOR]({image})",
        "",
    ])
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=5, help="bits per vector (default 5)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per (objective, p)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny budget (smoke test); results go to --out-dir")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where study_xor.md/.png go (default benchmarks/results)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> StudyResult:
    args = parse_args(argv)
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and the CPU is shared
    budget = QUICK if args.quick else Budget()
    if args.steps is not None:
        budget = Budget(**{**budget.__dict__, "steps": args.steps})
    start = time.perf_counter()
    result = run_study(args.d, args.seeds, budget, ps=QUICK_PS if args.quick else PS)
    elapsed = time.perf_counter() - start
    out = args.out_dir or RESULTS
    command = " ".join([".venv/bin/python examples/symile_xor.py", *(argv if argv is not None
                                                            else sys.argv[1:])])
    text = write_report(result, budget, args.seeds, command, elapsed,
                        out / "study_xor.md", out / "study_xor.png")
    print(text)
    return result


if __name__ == "__main__":
    main()
