"""``anymodal demo --digits``: the command this plugin adds, its packaged recipe, and a
small end-to-end run (build, train, evaluate, report)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from anymodal.cli import main
from anymodal.plugin_host.manager import get_plugin_manager
from anymodal_datasets.demo import RECIPE, recipe_path

REPO = Path(__file__).resolve().parents[3]


def test_the_plugin_registers_demo_digits() -> None:
    manager = get_plugin_manager()
    assert manager.commands.owner("demo-digits") == "datasets"


def test_demo_digits_flag_runs_the_plugin_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--digits", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: anymodal demo-digits" in out and "--limit" in out and "--data-dir" in out


def test_the_recipe_is_package_data_and_valid() -> None:
    from anymodal.config import load_config

    path = recipe_path()
    assert path.name == RECIPE and path.is_file()
    assert "anymodal_datasets" in path.parts  # inside the package, not the checkout
    config = load_config(path)
    assert set(config.modalities) == {"image", "audio", "video", "pointcloud", "graph", "text"}


@pytest.mark.slow
def test_digits_demo_small(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "anymodal", "demo", "--digits", "--limit", "30", "--steps", "2",
         "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "video+audio->text" in done.stdout and "chance R@1" in done.stdout
    assert (tmp_path / "run" / "report" / "report.png").is_file()
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
