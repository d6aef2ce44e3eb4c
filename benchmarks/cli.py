"""Speed of the command line itself: ``--help``, ``import anymodal``, ``eval`` against
``report`` on the same model and data, and the size of a training log's progress bar.

    python benchmarks/cli.py            # writes benchmarks/results/cli.md (a few minutes)

Each command runs in a fresh process, as a user runs it; wall and CPU (user + sys of the
child) are the medians of ``--repeats`` runs, eval and report alternating so that a change
in the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANYMODAL = [sys.executable, "-m", "anymodal"]
OUT = REPO / "benchmarks" / "results" / "cli.md"


def timed(argv: list[str], env: dict[str, str] | None = None, stderr: int | None = None
          ) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """``(wall s, cpu s, result)`` of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=stderr if stderr is not None else subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def train_small(folder: Path, steps: int, progress: bool, env: dict[str, str]) -> int:
    """Train the smoke recipe; returns the bytes the run wrote to stderr (a log file)."""
    log = folder.parent / f"{folder.name}.stderr.log"  # beside the run: it owns its folder
    with log.open("wb") as sink:
        timed([*ANYMODAL, "train", "recipes/smoke_clip.yaml", f"train.output_dir={folder}",
               f"train.max_steps={steps}", "train.checkpoint_every=0", "train.eval_every=0",
               f"logging.progress={str(progress).lower()}"], env, stderr=sink.fileno())
    return log.stat().st_size


def write_manifest(model_dir: Path, path: Path, rows: int) -> None:
    sys.path.insert(0, str(REPO))
    import anymodal
    from tests.retrieval.conftest import write_manifest as write

    write(path, anymodal.load_model(model_dir), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    help_runs = [timed([*ANYMODAL, "--help"], env)[:2] for _ in range(args.repeats)]
    probe = ("import sys, anymodal; print(json.dumps(sorted(m for m in ('torch', 'omegaconf', "
             "'pluggy') if m in sys.modules)))").replace("json.dumps", "__import__('json').dumps")
    import_runs = [timed([sys.executable, "-c", probe], env) for _ in range(args.repeats)]
    heavy = json.loads(import_runs[0][2].stdout)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env_log = {**env, "ANYMODAL_PROGRESS_SECONDS": "30"}
        log_throttled = train_small(folder / "a", args.steps, True, env_log)
        log_tqdm = train_small(folder / "b", args.steps, True,
                               {**env, "ANYMODAL_PROGRESS_SECONDS": "0.1"})
        log_none = train_small(folder / "c", args.steps, False, env)
        write_manifest(folder / "a" / "model", folder / "data.jsonl", args.rows)
        evals, reports = [], []
        for i in range(args.repeats):
            evals.append(timed([*ANYMODAL, "eval", str(folder / "a" / "model"), "--data",
                                str(folder / "data.jsonl")], env)[:2])
            reports.append(timed([*ANYMODAL, "report", str(folder / "a"), "--data",
                                  str(folder / "data.jsonl"), "-n", str(args.rows), "-o",
                                  str(folder / f"report{i}")], env)[:2])
    write_results(args, medians(help_runs), medians([r[:2] for r in import_runs]), heavy,
                  medians(evals), medians(reports), (log_throttled, log_tqdm, log_none))


def write_results(args: argparse.Namespace, help_t: tuple[float, float],
                  import_t: tuple[float, float], heavy: list[str], eval_t: tuple[float, float],
                  report_t: tuple[float, float], logs: tuple[int, int, int]) -> None:
    load = os.getloadavg()[0]
    text = f"""# Command line

`python benchmarks/cli.py --repeats {args.repeats} --rows {args.rows} --steps {args.steps}`
on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python
{platform.python_version()}, load average {load:.1f} when it finished (a shared machine:
wall times are noisy, CPU times less so). `PYTHONDONTWRITEBYTECODE` was
{os.environ.get("PYTHONDONTWRITEBYTECODE", "unset")!r}. Medians of {args.repeats} fresh processes.

| what | wall s | CPU s |
|---|---|---|
| `anymodal --help` | {help_t[0]:.2f} | {help_t[1]:.2f} |
| `python -c "import anymodal"` | {import_t[0]:.2f} | {import_t[1]:.2f} |
| `anymodal eval MODEL --data M` ({args.rows} rows, 9 default tasks) | {eval_t[0]:.2f} \
| {eval_t[1]:.2f} |
| `anymodal report RUN --data M -n {args.rows}` | {report_t[0]:.2f} | {report_t[1]:.2f} |
| report / eval | {report_t[0] / eval_t[0]:.2f}x | {report_t[1] / eval_t[1]:.2f}x |

`import anymodal` loaded {heavy or 'none'} of torch, omegaconf, pluggy.

Training log size (stderr of `anymodal train recipes/smoke_clip.yaml train.max_steps={args.steps}`
redirected to a file, so not a terminal): {logs[0]:,} bytes with the progress bar as
shipped (one redraw per 30 s at most), {logs[1]:,} bytes with a redraw every 0.1 s (tqdm's
own default interval), {logs[2]:,} bytes with `logging.progress=false`.
"""
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
