"""The ``anymodal`` command line: every command answers --help; plugins and doctor work."""

from __future__ import annotations

import json
import subprocess

import pytest

from anymodal.cli import build_parser, main
from tests.conftest import PYTHON, REPO

COMMANDS = ["plugins", "doctor", "train", "datasets", "demo", "embed", "index", "search", "eval",
            "report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: anymodal" in capsys.readouterr().out


def test_parser_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text


def test_plugins_json_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    builtins = {p["plugin"]: p for p in listing["plugins"] if p["builtin"]}
    assert "vector" in builtins["anymodal.builtin.vector"]["modalities"]
    assert "clip" in builtins["anymodal.builtin.objectives"]["objectives"]


def test_doctor_reports_each_component(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["torch"]["ok"]
    for name in ("torchaudio", "decord", "open3d", "torch_geometric", "triton", "faiss",
                 "ffmpeg"):
        assert name in checks
        assert checks[name]["ok"] or checks[name]["fix"]


def test_errors_exit_2_with_a_message(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "recipe" in capsys.readouterr().err


def test_python_dash_m_and_console_script_agree() -> None:
    result = subprocess.run([PYTHON, "-m", "anymodal", "--version"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("anymodal ")
