"""One way every command prints: a table for a person, or JSON for a program.

A :class:`Table` is drawn with rich on a terminal and as plain text otherwise (a pipe, a
log file, a CI job), where it never exceeds :data:`PLAIN_WIDTH` columns: the *name*
columns (a task such as ``audio+video->text``, a modality, a plugin) are never broken,
the other cells wrap inside their column. Metric tables put ``chance R@k`` beside each
``R@k`` (see :func:`recall_columns`) and name the positives rule in a note.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "PLAIN_WIDTH",
    "POSITIVES_RULES",
    "Table",
    "emit",
    "format_cell",
    "print_json",
    "print_table",
    "recall_columns",
    "render_plain",
]

PLAIN_WIDTH = 80
_GAP = "  "
_LONG_WORD = 24

POSITIVES_RULES = {
    "source": "positives: source (a target is correct when a row pairs it with the query)",
    "label": "positives: label (a target is correct when it has the query's label)",
}


@dataclass
class Table:
    """A titled table of rows.

    Args:
        title: one line above the table.
        columns: the header of each column.
        rows: one list of cells per row (floats are shown with 3 decimals).
        notes: lines printed under the table (the positives rule, what chance means).
        key_columns: how many leading columns hold names, which are never wrapped.
        detail: the last column is prose (a meaning, a reason): when the table is too
            wide for plain output, it is printed under its row, indented, instead of
            being squeezed into a narrow column.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key_columns: int = 1
    detail: bool = False


def format_cell(value: Any) -> str:
    """A cell's text: floats with 3 decimals, lists joined by commas, ``-`` for nothing."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _name_tokens(text: str) -> list[str]:
    """A name split where it may wrap: after each ``+`` and at spaces, never inside a name."""
    return re.findall(r"[^+\s]+\+?|\+|\s+", text) or [""]


def _wrap_name(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for token in _name_tokens(text):
        if line and len(line) + len(token.rstrip()) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    return [*lines, line.rstrip()]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _floor(column: int, header: str, cells: list[str], keys: int) -> int:
    """The narrowest a column may get: its longest name token, number or header word."""
    words = [len(w) for w in header.split()] or [0]
    if column < keys:
        return max([*words, *(len(t.strip()) for c in cells for t in _name_tokens(c))])
    if cells and all(_is_number(c) or c == "-" for c in cells):
        return max([*words, *(len(c) for c in cells)])  # a number is never cut
    # Text wraps at spaces; only a word longer than _LONG_WORD is ever cut.
    longest = max([len(w) for c in cells for w in c.split()] or [0])
    return max(6, *words, min(longest, _LONG_WORD))


def _column_widths(cells: list[list[str]], headers: list[str], keys: int, width: int
                   ) -> list[int]:
    """Widths that fit ``width`` by narrowing the widest wrappable columns first."""
    columns = [[row[i] for row in cells if i < len(row)] for i in range(len(headers))]
    widths = [max([len(h), *(len(line) for c in col for line in c.splitlines() or [""])])
              for h, col in zip(headers, columns)]
    floor = [_floor(i, h, col, keys) for i, (h, col) in enumerate(zip(headers, columns))]
    budget = width - len(_GAP) * (len(headers) - 1)
    while sum(widths) > budget:
        shrinkable = [i for i in range(len(widths)) if widths[i] > floor[i]]
        if not shrinkable:
            break  # the names and numbers alone are wider than the page: never cut them
        widths[max(shrinkable, key=lambda i: widths[i])] -= 1
    return widths


def _wrap(text: str, width: int, name: bool) -> list[str]:
    if name:
        return _wrap_name(text, width)
    lines: list[str] = []
    for part in text.splitlines() or [""]:
        lines += textwrap.wrap(part, width, break_long_words=True,
                               break_on_hyphens=False) or [""]
    return lines


def render_plain(table: Table, width: int = PLAIN_WIDTH) -> str:
    """The table as plain text no wider than ``width`` (unless its names alone are).

    Args:
        table: what to draw.
        width: the page width in characters.
    """
    cells = [[format_cell(v) for v in row] for row in table.rows]
    if table.detail and _natural_width(cells, table.columns) > width:
        return _render_with_details(table, cells, width)
    widths = _column_widths(cells, table.columns, table.key_columns, width)

    def block(row: Sequence[str], header: bool) -> list[str]:
        wrapped = [textwrap.wrap(text, widths[i], break_long_words=False) or [""]
                   if header else _wrap(text, widths[i], i < table.key_columns)
                   for i, text in enumerate(row)]
        height = max(len(w) for w in wrapped)
        return [_GAP.join(w[line].ljust(widths[i]) if line < len(w) else " " * widths[i]
                          for i, w in enumerate(wrapped)).rstrip()
                for line in range(height)]

    lines = textwrap.wrap(table.title, width, break_long_words=False) if table.title else []
    lines += block(table.columns, header=True)
    lines.append(_GAP.join("-" * w for w in widths))
    for row in cells:
        lines += block(row, header=False)
    for note in table.notes:  # notes wrap at spaces only: a path in a note stays whole
        lines += textwrap.wrap(note, width, break_long_words=False) or [""]
    return "\n".join(lines)


def _natural_width(cells: list[list[str]], headers: list[str]) -> int:
    widths = [max([len(h), *(len(row[i]) for row in cells if i < len(row))])
              for i, h in enumerate(headers)]
    return sum(widths) + len(_GAP) * (len(headers) - 1)


def _render_with_details(table: Table, cells: list[list[str]], width: int) -> str:
    """Plain text with the last column under each row, indented (like ``--help``)."""
    head = Table("", table.columns[:-1], [row[:-1] for row in cells], [], table.key_columns)
    drawn = render_plain(head, width).splitlines()
    lines = textwrap.wrap(table.title, width, break_long_words=False) if table.title else []
    lines += drawn[:2]  # the header and its rule
    for row, line in zip(cells, drawn[2:]):
        lines.append(line)
        lines += textwrap.wrap(row[-1], width, initial_indent="    ",
                               subsequent_indent="    ") if row[-1] != "-" else []
    for note in table.notes:
        lines += textwrap.wrap(note, width, break_long_words=False) or [""]
    return "\n".join(lines)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def print_table(table: Table, stream: TextIO | None = None) -> None:
    """Draw ``table``: rich on a terminal, plain 80-column text anywhere else.

    Args:
        table: what to draw.
        stream: where (default ``sys.stdout``); whether it is a terminal decides the form.
    """
    stream = stream or sys.stdout
    if not _is_terminal(stream):
        print(render_plain(table), file=stream)
        return
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns
    cells = [[format_cell(v) for v in row] for row in table.rows]
    # rich draws a border and one space of padding each side of every cell.
    widths = _column_widths(cells, table.columns, table.key_columns,
                            width - 3 * len(table.columns) - 1 + 2 * (len(table.columns) - 1))
    # Text(...) everywhere: a cell such as a JSON payload is data, never rich markup.
    rich_table = RichTable(title=Text(table.title) if table.title else None)
    for i, column in enumerate(table.columns):
        if i < table.key_columns:
            rich_table.add_column(column, no_wrap=True)
        else:
            rich_table.add_column(column, overflow="fold",
                                  justify="right" if _numeric(table, i) else "left")
    for row in cells:
        rich_table.add_row(*(Text("\n".join(_wrap_name(text, widths[i])))
                             if i < table.key_columns else Text(text)
                             for i, text in enumerate(row)))
    console = Console(file=stream, width=width)
    console.print(rich_table)
    for note in table.notes:
        console.print(note, highlight=False, markup=False)


def _numeric(table: Table, column: int) -> bool:
    values = [row[column] for row in table.rows if column < len(row)]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                for v in values)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """``data`` as indented JSON (paths and other objects as strings)."""
    print(json.dumps(data, indent=2, default=str), file=stream or sys.stdout)


def emit(data: Any, tables: Sequence[Table], as_json: bool, stream: TextIO | None = None
         ) -> None:
    """Print ``data`` as JSON when ``as_json``, else each of ``tables``."""
    if as_json:
        print_json(data, stream)
        return
    for table in tables:
        print_table(table, stream)


def recall_columns(metrics: Mapping[str, Any], ks: Sequence[int]) -> list[str]:
    """The metric keys to show for recall, each ``R@k`` followed by its chance level.

    ``chance_R@k`` is shown right after ``R@k`` wherever the metrics hold it, so that a
    recall is never read without the level a random ranking reaches.

    Args:
        metrics: one task's metrics (``{"R@1": ..., "chance_R@1": ...}``).
        ks: the k of recall@k, in order.
    """
    keys: list[str] = []
    for k in ks:
        keys.append(f"R@{k}")
        if f"chance_R@{k}" in metrics:
            keys.append(f"chance_R@{k}")
    return keys
