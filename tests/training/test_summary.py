"""The end-of-run summary: validation retrieval as one row per task, chance beside R@1,
the positives rule named, 80 columns when the output is a log."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.training.summary import print_end


def test_print_end_groups_retrieval_by_task(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    final = {"val/loss": 2.5, "train/lr": 1e-3}
    for task in ("a->b", "audio+video+pointcloud+graph+text->image"):
        final.update({f"val/{task}/R@1": 0.5, f"val/{task}/chance_R@1": 0.0625,
                      f"val/{task}/R@5": 0.9, f"val/{task}/MRR": 0.6})
    best = {"val/a->b/R@1": 0.75, "val/loss": 2.0}
    print_end(tmp_path, 10, final, best, 0, 1.0, 0.05, positives="source")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.startswith("task"))
    assert header.split()[:4] == ["task", "R@1", "chance", "R@1"]
    assert any(line.startswith("a->b ") and "0.750" in line for line in lines)  # best R@1
    assert "positives: source" in out
    assert "val/a->b/R@1" not in out  # shown in the task table, not again as a metric
    assert any(line.startswith("val/loss") and "2.000" in line for line in lines)
