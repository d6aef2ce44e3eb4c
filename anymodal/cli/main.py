"""The ``anymodal`` parser and the function that runs a command.

Each built-in command group is a module of this package with an ``add_parsers(sub)``
function: its parsers and its handlers side by side. Plugins add commands through the hook
``anymodal_register_commands``. Building the parser imports nothing heavy (no torch, no
plugin): plugins are loaded only when the command named is not a built-in one, so
``anymodal --help`` and every built-in command start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from anymodal._version import __version__
from anymodal.errors import AnymodalError

__all__ = ["BUILTIN_GROUPS", "build_parser", "builtin_commands", "main"]

# The modules of anymodal.cli that hold built-in commands, in the order --help lists them.
BUILTIN_GROUPS = ("plugins", "doctor", "describe", "config", "train", "datasets", "demo",
                  "index", "search", "evaluate", "cache")

# `anymodal demo --digits ...` is the plugin command `anymodal demo-digits ...`.
_FLAG_ALIASES = {("demo", "--digits"): "demo-digits"}

_EPILOG = ("Plugins may add commands (anymodal plugins lists them); "
           "'anymodal COMMAND --help' shows a command's options.")


def _new_parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="anymodal", epilog=_EPILOG,
        description="Contrastive learning across any number of modalities.")
    parser.add_argument("--version", action="version", version=f"anymodal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    return parser, sub


def _add_builtins(sub: Any) -> None:
    for group in BUILTIN_GROUPS:
        importlib.import_module(f"anymodal.cli.{group}").add_parsers(sub)


def builtin_commands() -> list[str]:
    """The names of the built-in commands (without loading any plugin)."""
    _, sub = _new_parser()
    _add_builtins(sub)
    return sorted(sub.choices)


def _add_plugin_commands(sub: Any) -> None:
    """Add every command registered by a plugin (this loads the plugins)."""
    from anymodal.plugin_host.manager import get_plugin_manager

    manager = get_plugin_manager()
    for name, entry in manager.commands.items():
        if name in sub.choices:
            print(f"anymodal: plugin {entry.plugin!r} registers command {name!r}, which is "
                  "a built-in command; ignored", file=sys.stderr)
            continue
        spec = entry.spec
        p = sub.add_parser(name, help=f"{spec.help} [plugin {entry.plugin}]",
                           description=spec.description or spec.help)
        if spec.configure is not None:
            spec.configure(p)
        p.set_defaults(func=spec.run)


def build_parser(plugins: bool = False) -> argparse.ArgumentParser:
    """The ``anymodal`` parser.

    Args:
        plugins: also add the commands that plugins register (loads every plugin).
    """
    parser, sub = _new_parser()
    _add_builtins(sub)
    if plugins:
        _add_plugin_commands(sub)
    return parser


def _command_name(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _resolve_aliases(argv: list[str]) -> list[str]:
    for (command, flag), target in _FLAG_ALIASES.items():
        if argv[:1] == [command] and flag in argv[1:]:
            return [target, *(a for a in argv[1:] if a != flag)]
    return argv


def _attach_extras(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   extra: list[str]) -> None:
    """``key=value`` items may follow options (``datasets build digits out --limit 5 seed=3``)."""
    target = "overrides" if hasattr(args, "overrides") else "params"
    if extra and hasattr(args, target) and all("=" in e and not e.startswith("-")
                                               for e in extra):
        getattr(args, target).extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at each record (pytest and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """The stream is always the current ``sys.stderr``; nothing to store."""


def _configure_logging() -> None:
    """Route ``anymodal.*`` loggers (bad rows, skipped items) to stderr, once."""
    root = logging.getLogger("anymodal")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("anymodal: %(message)s"))
        root.addHandler(handler)
    if root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for a usage or anymodal error).

    Args:
        argv: the arguments after ``anymodal`` (default: ``sys.argv[1:]``).
    """
    argv = _resolve_aliases(list(sys.argv[1:] if argv is None else argv))
    name = _command_name(argv)
    parser, sub = _new_parser()
    _add_builtins(sub)
    if name is not None and name not in sub.choices:  # perhaps a plugin's command
        _add_plugin_commands(sub)
    args, extra = parser.parse_known_args(argv)
    _attach_extras(parser, args, extra)
    _configure_logging()
    try:
        result: Any = args.func(args)
    except AnymodalError as exc:
        print(f"anymodal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"anymodal {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `anymodal ... | head`: the reader left; exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return int(result or 0)
