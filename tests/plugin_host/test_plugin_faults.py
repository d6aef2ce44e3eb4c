"""Faulty plugins of issue 14: an import that exits or hangs, an encoder of the wrong width."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

import anymodal
import anymodal.plugin_host.manager as manager_module
from anymodal.errors import ConfigError, PluginError
from anymodal.plugin_host.manager import PluginManager, check_output_width
from anymodal.types import EncoderSpec
from tests.plugin_host.conftest import RunPython


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ANYMODAL_PLUGIN_MODULES", name)
    sys.modules.pop(name, None)


@pytest.mark.parametrize("raise_", ["SystemExit(3)", "GeneratorExit()"])
def test_a_plugin_that_exits_at_import_is_a_reported_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raise_: str) -> None:
    # issue 14: a plugin raising SystemExit at import ended every CLI command silently.
    _module(tmp_path, monkeypatch, "amtest_exits", f"raise {raise_}\n")
    manager = PluginManager().load()
    failure = manager.failure_for("amtest_exits")
    assert failure is not None and "failed to import" in failure.reason
    assert type(eval(raise_)).__name__ in failure.reason
    assert "vector" in manager.modalities  # the others still load


def test_a_register_hook_that_exits_is_a_reported_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module(tmp_path, monkeypatch, "amtest_hook_exits", """
        import sys
        from anymodal import hookimpl

        @hookimpl
        def anymodal_register_encoders(register):
            sys.exit("bye")
    """)
    manager = PluginManager().load()
    failure = manager.failure_for("amtest_hook_exits")
    assert failure is not None and "SystemExit" in failure.reason


@dataclass
class _WideConfig:
    width: int = 8


class _Liar(nn.Module):
    """Declares ``width`` 8 but returns 5 features."""

    def __init__(self, config: _WideConfig) -> None:
        super().__init__()
        self.width = config.width
        self.net = nn.LazyLinear(5)

    def forward(self, batch):  # type: ignore[no-untyped-def]
        return self.net(batch)


def test_an_encoder_of_the_wrong_width_is_named_at_create_encoder() -> None:
    # issue 14: it failed deep in the projection head without naming the encoder.
    modality = anymodal.get_modality("vector", dim=4)
    liar = _Liar(_WideConfig())
    with pytest.raises(PluginError, match=r"encoder 'vector_liar' \(plugin 'p'\) returned "
                                          r"\(2, 5\).*expected \(2, 8\)"):
        check_output_width(liar, modality, "encoder 'vector_liar' (plugin 'p')")


def test_an_encoder_of_the_wrong_width_fails_at_create_encoder_naming_its_plugin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    manager = PluginManager().load()
    monkeypatch.setattr(manager_module, "_MANAGER", manager)  # a private registry
    spec = EncoderSpec(name="vector_liar", modality="vector", factory=_Liar,
                       config_cls=_WideConfig)

    class Plugin:
        @staticmethod
        @anymodal.hookimpl
        def anymodal_register_encoders(register):  # type: ignore[no-untyped-def]
            register(spec)

    assert manager.register_plugin(Plugin, name="liars")
    with pytest.raises(PluginError, match=r"encoder 'vector_liar' \(plugin 'liars'\) "
                                          r"returned \(2, 5\)"):
        anymodal.create_encoder("vector_liar", anymodal.get_modality("vector", dim=4))
    good = anymodal.create_encoder("vector_mlp", anymodal.get_modality("vector", dim=4))
    assert good.width > 0


# -- a plugin whose import hangs (issue 14: it blocked anymodal forever) ----------------------

_HANGS = """
    import time
    time.sleep(60)
"""


def _hanging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str = _HANGS,
             timeout: str = "0.5") -> None:
    _module(tmp_path, monkeypatch, name, body)
    monkeypatch.setenv("ANYMODAL_PLUGIN_IMPORT_TIMEOUT", timeout)


@pytest.mark.parametrize("body", [_HANGS, """
    import time
    try:  # a plugin that swallows every Exception still cannot swallow the time limit
        time.sleep(60)
    except Exception:
        time.sleep(60)
"""], ids=["sleeps", "swallows_exceptions"])
def test_a_plugin_whose_import_hangs_is_a_reported_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    _hanging(tmp_path, monkeypatch, "amtest_hangs", body)
    start = time.monotonic()
    manager = PluginManager().load()
    assert time.monotonic() - start < 10
    failure = manager.failure_for("amtest_hangs")
    assert failure is not None
    assert "did not finish importing within 0.5 s" in failure.reason
    assert "ANYMODAL_PLUGIN_IMPORT_TIMEOUT" in failure.reason
    assert "amtest_hangs" not in sys.modules  # unwound like any failed import
    assert "vector" in manager.modalities  # the others still load


def test_an_import_blocked_in_a_system_call_is_interrupted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Opening a FIFO that nobody writes blocks in open(2): SIGALRM interrupts it.
    fifo = tmp_path / "never_written"
    os.mkfifo(fifo)
    _hanging(tmp_path, monkeypatch, "amtest_fifo", f"DATA = open({str(fifo)!r}).read()\n")
    start = time.monotonic()
    failure = PluginManager().load().failure_for("amtest_fifo")
    assert failure is not None and "within 0.5 s" in failure.reason
    assert time.monotonic() - start < 10


def test_a_hanging_import_raises_in_strict_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hanging(tmp_path, monkeypatch, "amtest_hangs_strict")
    with pytest.raises(PluginError, match=r"plugin 'amtest_hangs_strict' .*did not finish "
                                          r"importing within 0\.5 s.*ANYMODAL_STRICT_PLUGINS"):
        PluginManager(strict=True).load()


def test_a_hanging_import_is_bounded_outside_the_main_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No SIGALRM there: the import runs in a worker thread, abandoned after the limit.
    _hanging(tmp_path, monkeypatch, "amtest_hangs_thread", "import time\ntime.sleep(5)\n")
    found: list[PluginManager] = []
    loader = threading.Thread(target=lambda: found.append(PluginManager().load()))
    start = time.monotonic()
    loader.start()
    loader.join(30)
    assert found and time.monotonic() - start < 4.5
    failure = found[0].failure_for("amtest_hangs_thread")
    assert failure is not None and "within 0.5 s" in failure.reason


def test_a_slow_import_within_the_limit_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hanging(tmp_path, monkeypatch, "amtest_slow", "import time\ntime.sleep(0.2)\n",
             timeout="5")
    manager = PluginManager().load()
    assert "amtest_slow" in manager.plugins and manager.failure_for("amtest_slow") is None
    # The alarm was put away: nothing fires later in the process.
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.default_int_handler,
                                                None)


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_import_timeout_is_a_config_error(monkeypatch: pytest.MonkeyPatch,
                                                value: str) -> None:
    monkeypatch.setenv("ANYMODAL_PLUGIN_IMPORT_TIMEOUT", value)
    with pytest.raises(ConfigError, match=rf"ANYMODAL_PLUGIN_IMPORT_TIMEOUT='{value}': "
                                          r"expected a number of seconds >= 0"):
        PluginManager()


def test_the_cli_answers_although_a_plugin_hangs(tmp_path: Path, run_python: RunPython) -> None:
    (tmp_path / "amtest_cli_hangs.py").write_text(textwrap.dedent(_HANGS))
    done = run_python("-m", "anymodal", "plugins", paths=(tmp_path,),
                      ANYMODAL_PLUGIN_MODULES="amtest_cli_hangs",
                      ANYMODAL_PLUGIN_IMPORT_TIMEOUT="1")
    assert done.returncode == 0, done.stderr
    failed = " ".join(done.stdout[done.stdout.index("plugins that failed to load"):].split())
    assert "amtest_cli_hangs" in failed and "did not finish importing within 1 s" in failed
