"""Make the plugin usable by its tests, installed or not.

Installed (``pip install -e .``), anymodal finds it through its entry point. Run from a
source checkout without installing it, the package is put on ``sys.path`` and registered
with the process's plugin manager by hand (``register_plugin``), which is what the entry
point would have done.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import anymodal

if importlib.util.find_spec("anymodal_timeseries") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="session", autouse=True)
def timeseries_plugin() -> None:
    """Ensure the ``timeseries`` modality and its encoder are registered."""
    if "timeseries" in anymodal.list_modalities():
        return
    import anymodal_timeseries

    manager = anymodal.get_plugin_manager()
    loaded = manager.register_plugin(anymodal_timeseries, name="timeseries",
                                     distribution="anymodal-timeseries",
                                     version=anymodal_timeseries.__version__)
    assert loaded, [str(f) for f in manager.failures]
