"""Shared fixtures of the example-script tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextmanager
def example_module(filename: str) -> Iterator[ModuleType]:
    """An example script imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"{Path(filename).stem}_example",
                                                  EXAMPLES / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The scripts train tiny models on one torch thread; restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
