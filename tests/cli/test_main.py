"""The ``anymodal`` command line: every command answers --help, plugins add commands
through ``anymodal_register_commands``, and the parser never imports torch or a plugin."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anymodal import CommandSpec, hookimpl
from anymodal.cli import build_parser, main
from anymodal.cli.main import builtin_commands
from anymodal.plugin_host.manager import PluginManager, reset_plugin_manager
from tests.conftest import PYTHON, REPO

COMMANDS = ["plugins", "doctor", "describe", "config", "train", "datasets", "demo", "embed",
            "index", "search", "eval", "report"]


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
    assert set(COMMANDS) <= set(builtin_commands())


def test_plugins_json_lists_builtins_and_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    builtins = {p["plugin"]: p for p in listing["plugins"] if p["builtin"]}
    assert "vector" in builtins["anymodal.builtin.vector"]["modalities"]
    assert "clip" in builtins["anymodal.builtin.objectives"]["objectives"]
    assert all("commands" in p for p in listing["plugins"])


def test_doctor_json_names_status_and_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json", "--only", "torch"]) == 0
    [torch] = json.loads(capsys.readouterr().out)
    assert torch["name"] == "torch" and torch["status"] == "ok" and not torch["fails_strict"]


def test_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "recipe" in capsys.readouterr().err


def test_python_dash_m_and_console_script_agree() -> None:
    result = subprocess.run([PYTHON, "-m", "anymodal", "--version"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("anymodal ")


@pytest.mark.slow  # a fresh interpreter: about a second
def test_help_and_builtin_parsers_import_neither_torch_nor_plugins() -> None:
    """``anymodal --help`` stays fast because nothing heavy is imported to build it."""
    code = ("import sys; from anymodal.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'omegaconf', 'matplotlib', 'faiss', 'pluggy', "
            "'anymodal.plugin_host.manager', 'anymodal_datasets') if m in sys.modules]\n"
            "print(heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO)
    assert done.stderr.strip() == "[]"
    assert "describe" in done.stdout


class _HelloPlugin:
    """A plugin that adds ``hello`` and tries to take the built-in ``train``."""

    def __init__(self) -> None:
        self.calls: list[argparse.Namespace] = []

    def _configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", default="world")

    def _run(self, args: argparse.Namespace) -> int:
        self.calls.append(args)
        print(f"hello {args.name}")
        return 3

    @hookimpl
    def anymodal_register_commands(self, register: Any) -> None:
        register(CommandSpec("hello", self._run, self._configure, help="say hello"))
        register(CommandSpec("train", self._run, help="a plugin may not replace a built-in"))


@pytest.fixture
def hello() -> Iterator[_HelloPlugin]:
    plugin = _HelloPlugin()
    manager = PluginManager(autoload=False).load()
    assert manager.register_plugin(plugin, name="hello-plugin")
    reset_plugin_manager(manager)
    yield plugin
    reset_plugin_manager(None)


def test_a_plugin_adds_a_command(hello: _HelloPlugin, capsys: pytest.CaptureFixture[str]
                                 ) -> None:
    assert main(["hello", "--name", "anymodal"]) == 3
    assert "hello anymodal" in capsys.readouterr().out
    assert hello.calls[0].name == "anymodal"
    with pytest.raises(SystemExit):
        main(["hello", "--help"])
    assert "--name" in capsys.readouterr().out


def test_a_plugin_cannot_shadow_a_builtin_command(hello: _HelloPlugin,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hello"]) == 3  # loads the plugin commands: 'train' is refused, not used
    assert "registers command 'train', which is a built-in command" in capsys.readouterr().err
    assert main(["train", "/nonexistent.yaml"]) == 2  # still the built-in train
    assert not [c for c in hello.calls if getattr(c, "recipe", None)]


def test_unknown_command_lists_builtin_and_plugin_commands(
        hello: _HelloPlugin, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["helo"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'helo'" in err and "'hello'" in err and "'train'" in err


def test_skipped_items_are_logged_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from anymodal.cli.items import report_failures
    from anymodal.cli.main import _configure_logging

    _configure_logging()
    report_failures([(i, f"bad {i}") for i in range(25)])
    err = capsys.readouterr().err
    assert "skipped item 0: bad 0" in err and "skipped item 19" in err
    assert "skipped item 20" not in err and "and 5 more skipped items" in err
