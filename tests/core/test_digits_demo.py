"""``anymodal demo --digits`` on a few digits: build, train, evaluate, report."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO


@pytest.mark.slow
def test_digits_demo_small(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "anymodal", "demo", "--digits", "--limit", "30", "--steps", "2",
         "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "run")],
        cwd=REPO, env={**cli_env, "COLUMNS": "160"}, capture_output=True, text=True,
        timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "video+audio->text" in done.stdout and "chance R@1" in done.stdout
    assert (tmp_path / "run" / "report" / "report.png").is_file()
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
