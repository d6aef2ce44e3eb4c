"""Tests of ``examples/objective_curves.py``: spec parsing and the curve table."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.examples.conftest import example_module


@pytest.fixture(scope="module")
def curves() -> Iterator[ModuleType]:
    with example_module("objective_curves.py") as module:
        yield module


def test_spec_parsing(curves: ModuleType) -> None:
    assert curves._parse("siglip") == ("siglip", {})
    assert curves._parse("siglip:init_bias=-4.16") == ("siglip", {"init_bias": -4.16})
    assert curves._parse("dcl:weighted=True;sigma=0.25") == ("dcl", {"weighted": True,
                                                                      "sigma": 0.25})
    assert curves._parse("clip:anchor=text;hard_negative_alpha=2") == (
        "clip", {"anchor": "text", "hard_negative_alpha": 2.0})


def test_table_rows_follow_the_recorded_steps(curves: ModuleType) -> None:
    tasks = curves.study.TASKS
    curve = curves.Curve("siglip", steps=[0, 10], loss=[float("nan"), 5.2], scale=[14.3, 14.0],
                         bias=[-10.0, -9.5], recall={t: [0.1, 0.2] for t in tasks})
    lines = curves.format_curves([curve]).splitlines()
    assert lines[0] == "**siglip**"
    assert lines[2].startswith("| step | loss | scale | bias | ")
    assert lines[5] == "| 10 | 5.200 | 14.00 | -9.50 | " + " | ".join(["0.200"] * len(tasks)) + " |"
    none = curves.Curve("clip", steps=[0], loss=[1.0], scale=[1.0], bias=[None],
                        recall={t: [0.0] for t in tasks})
    assert "| 0 | 1.000 | 1.00 | - |" in curves.format_curves([none])


def test_model_options_parse_like_objective_params(curves: ModuleType) -> None:
    assert curves._parse(":center=false;logit_scale_init=5")[1] == {
        "center": False, "logit_scale_init": 5.0}
    assert curves._parse(":")[1] == {}
