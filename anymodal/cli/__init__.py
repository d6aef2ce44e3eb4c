"""The ``anymodal`` command line: one module per command group, parsers beside handlers.

``anymodal plugins|doctor|describe|config|train|datasets|demo|embed|index|search|eval|
report``, and the commands plugins add (``anymodal_register_commands``); ``--help`` on
each. Output goes through :mod:`anymodal.cli.output` (a table, or JSON with ``--json``).
"""

from __future__ import annotations

from anymodal.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
