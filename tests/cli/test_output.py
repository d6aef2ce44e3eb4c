"""The output helper: plain tables fit 80 columns by wrapping cells, never names; rich on a
terminal; chance beside each R@k; JSON for programs."""

from __future__ import annotations

import io
import json
import re

import pytest

from anymodal.cli.output import (
    PLAIN_WIDTH,
    Table,
    emit,
    print_table,
    recall_columns,
    render_plain,
)

LONG_TASK = "audio+video+pointcloud+graph+text->image"
MODALITIES = ("audio", "video", "pointcloud", "graph", "text", "image")


def _eval_table() -> Table:
    rows = [[task, 0.912, 0.1, 0.99, 1.0, 0.95, 0.93, 1.0, 120]
            for task in ("audio->image", "pointcloud->text", LONG_TASK)]
    return Table("retrieval on data/digits/test.jsonl (a long title that wraps at a space)",
                 ["task", "R@1", "chance R@1", "R@5", "R@10", "MRR", "mAP", "median rank",
                  "queries"], rows, ["positives: label"])


def test_plain_table_fits_80_columns_and_never_cuts_a_name() -> None:
    text = render_plain(_eval_table())
    assert max(len(line) for line in text.splitlines()) <= PLAIN_WIDTH
    # The long task wraps only after a '+', so every modality name is whole on some line.
    task_lines = [line.split("  ")[0].strip() for line in text.splitlines()]
    for name in MODALITIES:
        assert any(name in line for line in task_lines)
    assert "audio-" not in text.replace("audio->", "")  # no 'audio- / >image' split
    joined = "".join(line for line in task_lines if line and line[0].isalpha())
    assert LONG_TASK in joined
    assert "0.912" in text and "positives: label" in text


def test_numbers_are_never_wrapped() -> None:
    text = render_plain(_eval_table())
    for line in text.splitlines():
        for cell in line.split():
            if cell[0].isdigit():
                assert cell in {"0.912", "0.100", "0.990", "1.000", "0.950", "0.930", "120"}


def test_long_text_cells_wrap_inside_their_column() -> None:
    table = Table("t", ["id", "payload"], [["r1", "word " * 60]])
    lines = render_plain(table).splitlines()
    assert max(len(line) for line in lines) <= PLAIN_WIDTH
    assert sum("word" in line for line in lines) > 3


def test_detail_column_goes_under_its_row_when_too_wide() -> None:
    table = Table("options", ["option", "type", "default", "meaning"],
                  [["train.max_steps", "int", 100, "optimiser steps to run " * 6]],
                  detail=True)
    lines = render_plain(table).splitlines()
    assert lines[1].split() == ["option", "type", "default"]
    assert lines[3].split() == ["train.max_steps", "int", "100"]
    assert lines[4].startswith("    optimiser steps")
    assert max(len(line) for line in lines) <= PLAIN_WIDTH


def test_not_a_tty_gets_plain_text_and_json_gets_json() -> None:
    stream = io.StringIO()
    print_table(_eval_table(), stream)
    assert "\x1b[" not in stream.getvalue() and "│" not in stream.getvalue()
    stream = io.StringIO()
    emit({"a": 1}, [_eval_table()], as_json=True, stream=stream)
    assert json.loads(stream.getvalue()) == {"a": 1}


def test_a_terminal_gets_rich_with_names_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERM", "xterm")
    stream = Terminal()
    print_table(Table("t", ["task", "payload"], [["a->b", "[bold]not markup[/bold]"]]), stream)
    out = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # the width counts characters
    assert "[bold]not markup[/bold]" in out  # data is never read as rich markup
    assert "┏" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_recall_columns_put_chance_beside_each_recall() -> None:
    metrics = {"R@1": 0.5, "chance_R@1": 0.1, "R@5": 0.9, "chance_R@5": 0.4, "R@10": 1.0}
    assert recall_columns(metrics, [1, 5, 10]) == ["R@1", "chance_R@1", "R@5", "chance_R@5",
                                                   "R@10"]
