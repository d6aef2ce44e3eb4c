"""Fake plugin distributions, found by ``importlib.metadata`` for real, and a CLI runner.

Each fake plugin is a module plus a ``<name>-<version>.dist-info`` folder holding
``METADATA`` and ``entry_points.txt``, exactly what pip writes into ``site-packages``. A
folder of them on ``sys.path`` (in this process) or ``PYTHONPATH`` (in a subprocess) is
discovered through the ``anymodal`` entry-point group with no patching at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_SWITCHES = ("ANYMODAL_PLUGINS", "ANYMODAL_DISABLE_PLUGIN_AUTOLOAD",
                "ANYMODAL_STRICT_PLUGINS", "ANYMODAL_PLUGIN_MODULES")

# An encoder for the built-in "vector" modality, shared by the well-behaved fakes.
_ENCODER = """
from dataclasses import dataclass
from typing import Any

from torch import nn

from anymodal import EncoderSpec, hookimpl


@dataclass
class LinearConfig:
    in_dim: int = 32
    width: int = 8


class Linear(nn.Linear):
    def __init__(self, config: LinearConfig) -> None:
        super().__init__(config.in_dim, config.width)
        self.width = config.width
"""


@dataclass(frozen=True)
class FakePlugin:
    """A distribution ``dist`` (version ``version``) whose entry point ``entry`` names
    ``module``, a module made of ``source``."""

    dist: str
    version: str
    entry: str
    module: str
    source: str


FAKE_PLUGINS = {
    "a": FakePlugin("fake-good-a", "1.0.0", "a", "amtest_good_a", _ENCODER + """
@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("vector_linear_a", "vector", Linear, LinearConfig))
"""),
    "b": FakePlugin("fake-good-b", "2.0.0", "b", "amtest_good_b", _ENCODER + """
@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("vector_linear_b", "vector", Linear, LinearConfig))
"""),
    "broken": FakePlugin("fake-broken", "1.2.3", "broken", "amtest_broken", """
raise RuntimeError("boom: calibration table missing")
"""),
    # Takes the built-in "vector_mlp": nothing of it may be registered, not even its
    # other, harmless encoder.
    "dup": FakePlugin("fake-dup", "0.3.0", "dup", "amtest_dup", _ENCODER + """
@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("vector_dup_extra", "vector", Linear, LinearConfig))
    register(EncoderSpec("vector_mlp", "vector", Linear, LinearConfig))
"""),
    # A hook anymodal does not define (a typo or a newer API): refused as a whole.
    "widgets": FakePlugin("fake-widgets", "0.4.0", "widgets", "amtest_widgets", _ENCODER + """
@hookimpl
def anymodal_register_widgets(register: Any) -> None:
    register("a widget")


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("vector_widget_encoder", "vector", Linear, LinearConfig))
"""),
    # Looks the registry up while plugins are loading: must fail clearly, not deadlock.
    "eager": FakePlugin("fake-eager", "0.5.0", "eager", "amtest_eager", """
import anymodal

KNOWN = anymodal.list_modalities()
"""),
    # An encoder for a modality no plugin provides.
    "orphan": FakePlugin("fake-orphan", "0.6.0", "orphan", "amtest_orphan", _ENCODER + """
@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("seismic_linear", "seismic", Linear, LinearConfig))
"""),
}

# A module with hookimpls but no distribution: loaded through ANYMODAL_PLUGIN_MODULES only.
LOOSE_MODULE = ("amtest_loose", _ENCODER + """
@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("vector_linear_loose", "vector", Linear, LinearConfig))
""")


def write_fake_dist(site: Path, plugin: FakePlugin) -> None:
    """Install ``plugin`` into the folder ``site`` the way pip lays a wheel out."""
    info = site / f"{plugin.dist.replace('-', '_')}-{plugin.version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {plugin.dist}\nVersion: {plugin.version}\n")
    (info / "entry_points.txt").write_text(f"[anymodal]\n{plugin.entry} = {plugin.module}\n")
    (site / f"{plugin.module}.py").write_text(textwrap.dedent(plugin.source).lstrip())


@pytest.fixture(scope="session")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site-packages-like folder holding every fake plugin and the loose module."""
    site = tmp_path_factory.mktemp("fake_site")
    for plugin in FAKE_PLUGINS.values():
        write_fake_dist(site, plugin)
    name, source = LOOSE_MODULE
    (site / f"{name}.py").write_text(textwrap.dedent(source).lstrip())
    return site


@pytest.fixture(autouse=True)
def no_plugin_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set the ANYMODAL_* switches they need; none leaks in from the shell."""
    for name in ENV_SWITCHES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def on_sys_path(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``fake_site`` on this process's ``sys.path`` (as PYTHONPATH would put it)."""
    monkeypatch.syspath_prepend(str(fake_site))
    yield fake_site
    fakes = {p.module for p in FAKE_PLUGINS.values()} | {LOOSE_MODULE[0]}
    for module in fakes & set(sys.modules):
        del sys.modules[module]


def subprocess_env(*paths: Path, **switches: str) -> dict[str, str]:
    """The test's environment without ANYMODAL_* switches, plus ``switches``, with
    ``paths`` first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_SWITCHES}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(p) for p in paths] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave installed folders exactly as pip wrote them
    env["COLUMNS"] = "400"  # rich wraps tables at 80 columns when stdout is not a terminal
    env.update(switches)
    return env


RunPython = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_python(tmp_path: Path) -> RunPython:
    """``run_python(*args, paths=(), **switches)``: ``python *args`` in a fresh process,
    from an empty folder, with ``paths`` on PYTHONPATH and the ANYMODAL_* ``switches``."""

    def run(*args: str, paths: tuple[Path, ...] = (),
            **switches: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=subprocess_env(*paths, **switches))

    return run

