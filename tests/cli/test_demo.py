"""``anymodal demo --quick`` runs end to end and prints the retrieval table beside chance."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO


@pytest.mark.slow
def test_demo_quick(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = subprocess.run([PYTHON, "-m", "anymodal", "demo", "--quick", "--output-dir",
                           str(tmp_path)], cwd=REPO, env={**cli_env, "COLUMNS": "120"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "a+b -> c" in done.stdout
    for objective in ("clip", "symile"):
        assert (tmp_path / objective / "model" / "model.safetensors").is_file()
        assert (tmp_path / objective / "index_c").exists()
