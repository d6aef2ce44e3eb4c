"""Faulty plugins of issue 14: an import that exits, an encoder of the wrong width."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

import anymodal
import anymodal.plugin_host.manager as manager_module
from anymodal.errors import PluginError
from anymodal.plugin_host.manager import PluginManager, check_output_width
from anymodal.types import EncoderSpec


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
