"""Run every benchmark script, then assemble BENCHMARKS.md from ``benchmarks/results/*.md``.

    python benchmarks/run_all.py             # all benchmarks (several minutes on 2 cores)
    python benchmarks/run_all.py --collect   # only re-assemble BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORDER = ["objectives", "kernels", "training", "media", "retrieval", "study", "study_objectives",
         "objective_curves", "study_xor"]
HEADER = """# Benchmarks

Every figure below was measured by the script named in its section, on the machine it
names; `make bench` runs them all and rewrites this file (`python benchmarks/run_all.py
--collect` only re-assembles it from `benchmarks/results/`). Speed targets live here, never
as timing assertions in tests.
"""


def collect() -> None:
    results = REPO / "benchmarks" / "results"
    parts = [HEADER]
    names = [n for n in ORDER if (results / f"{n}.md").exists()]
    names += sorted(p.stem for p in results.glob("*.md") if p.stem not in ORDER)
    for name in names:
        text = (results / f"{name}.md").read_text().strip()
        # Each results file is a page of its own: one heading level down inside this one.
        lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
        parts.append("\n".join(lines) + "\n")
    (REPO / "BENCHMARKS.md").write_text("\n".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", action="store_true")
    args = parser.parse_args()
    if not args.collect:
        for name in ORDER:
            script = REPO / "benchmarks" / f"{name}.py"
            if script.exists():
                print(f"== {script.name}", flush=True)
                subprocess.run([sys.executable, str(script)], cwd=REPO, check=True)
    collect()
    print(f"wrote {REPO / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
