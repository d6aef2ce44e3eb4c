"""The retrieval commands of the CLI: ``embed``, ``index``, ``search``, ``eval``, ``report``.

Only argparse is imported here; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_retrieval_commands"]


def _not_yet(args: argparse.Namespace) -> int:
    print(f"anymodal {args.command}: not implemented yet", file=sys.stderr)
    return 2


def add_retrieval_commands(sub: Any) -> None:
    """Add the retrieval subcommands to the ``anymodal`` parser's subparsers."""
    for name, help_text in (
        ("embed", "embed raw items with a trained model"),
        ("index", "build, extend or inspect an index"),
        ("search", "search an index with one or more query modalities"),
        ("eval", "retrieval and zero-shot evaluation of a trained model"),
        ("report", "plots and measures of a training run"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=_not_yet)
