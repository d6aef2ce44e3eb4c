"""The plugin manager against real (fake) distributions found by ``importlib.metadata``.

In-process tests build their own :class:`~anymodal.plugin_host.manager.PluginManager`, so
the process's cached manager is untouched; the environment switches are real environment variables.
Tests of the CLI and of import-time lookups run ``python -m anymodal`` in a subprocess.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

import anymodal
from anymodal.plugin_host.manager import BUILTIN_PLUGINS, PluginManager

BUILTINS = set(BUILTIN_PLUGINS)
RunPython = Callable[..., subprocess.CompletedProcess[str]]  # the run_python fixture


def _loaded(manager: PluginManager) -> set[str]:
    return {name for name, info in manager.plugins.items() if not info.builtin}


def _failures(manager: PluginManager) -> dict[str, str]:
    return {f.name: f.reason for f in manager.failures}


def test_fake_distributions_are_found_by_importlib_metadata(on_sys_path: Path) -> None:
    found = {ep.name: ep for ep in metadata.entry_points(group="anymodal")}
    for name in ("a", "broken", "dup", "widgets"):
        assert name in found, f"entry point {name!r} not discovered: {sorted(found)}"
    assert found["broken"].dist.version == "1.2.3"


def test_failures_are_reported_with_distribution_version_and_reason_while_others_load(
        on_sys_path: Path) -> None:
    manager = PluginManager(allow=["a", "broken", "dup", "widgets", "b"]).load()

    assert BUILTINS <= set(manager.plugins) and _loaded(manager) == {"a", "b"}
    assert manager.plugins["a"].distribution == "fake-good-a"
    assert manager.plugins["a"].version == "1.0.0"
    assert manager.plugins["a"].encoders == ["vector_linear_a"]
    assert {"vector_linear_a", "vector_linear_b", "vector_mlp"} <= set(manager.encoders)

    by_name = {f.name: f for f in manager.failures}
    assert set(by_name) == {"broken", "dup", "widgets"}
    broken = by_name["broken"]
    assert (broken.distribution, broken.version) == ("fake-broken", "1.2.3")
    assert "failed to import" in broken.reason
    assert "RuntimeError: boom: calibration table missing" in broken.reason
    assert "fake-broken 1.2.3" in str(broken)
    assert manager.failure_for("fake-broken") is broken


def test_a_duplicate_name_is_reported_and_the_plugin_contributes_nothing(
        on_sys_path: Path) -> None:
    manager = PluginManager(allow=["dup"]).load()
    (failure,) = manager.failures
    assert (failure.name, failure.distribution, failure.version) == ("dup", "fake-dup", "0.3.0")
    assert "'vector_mlp'" in failure.reason and "anymodal.builtin.vector" in failure.reason
    assert "vector_dup_extra" not in manager.encoders, "a refused plugin contributed"
    assert manager.encoders.owner("vector_mlp") == "anymodal.builtin.vector"
    assert not manager.pm.has_plugin("dup")
    assert manager.encoders.get("vector_mlp").factory.__name__ == "VectorMLP"


def test_an_unknown_hook_is_reported_and_the_plugin_contributes_nothing(
        on_sys_path: Path) -> None:
    manager = PluginManager(allow=["widgets"]).load()
    (failure,) = manager.failures
    assert (failure.distribution, failure.version) == ("fake-widgets", "0.4.0")
    assert "anymodal_register_widgets" in failure.reason
    assert "anymodal_register_encoders" in failure.reason  # the known hooks are listed
    assert "vector_widget_encoder" not in manager.encoders


def test_an_encoder_for_a_missing_modality_is_reported_once(on_sys_path: Path) -> None:
    import amtest_good_a  # type: ignore[import-not-found]

    manager = PluginManager(allow=["orphan"]).load()
    (failure,) = manager.failures
    assert (failure.name, failure.distribution) == ("orphan", "fake-orphan")
    assert "'seismic_linear'" in failure.reason and "'seismic'" in failure.reason
    # register_plugin checks encoders' modalities again: the same problem is not re-reported.
    assert manager.register_plugin(amtest_good_a, name="later")
    assert manager.failures == [failure]
    with pytest.raises(anymodal.PluginError, match="seismic_linear"):
        PluginManager(allow=["orphan"], strict=True).load()


def test_allow_list_loads_only_the_named_plugins_and_always_the_builtins(
        on_sys_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_PLUGINS", "a")
    manager = PluginManager().load()
    assert _loaded(manager) == {"a"} and BUILTINS <= set(manager.plugins)
    assert manager.failures == [], "plugins outside the allow-list must not even be imported"
    assert "vector_linear_b" not in manager.encoders

    # A distribution name works as well as an entry-point name; spaces are ignored.
    monkeypatch.setenv("ANYMODAL_PLUGINS", " fake-good-b , a ")
    assert _loaded(PluginManager().load()) == {"a", "b"}


def test_autoload_switch_loads_only_the_builtins(
        on_sys_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("ANYMODAL_PLUGINS", "a,broken")  # the switch wins over the list
    manager = PluginManager().load()
    assert set(manager.plugins) == BUILTINS and manager.failures == []
    assert "vector" in manager.modalities and "clip" in manager.objectives
    monkeypatch.setenv("ANYMODAL_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert _loaded(PluginManager().load()) == {"a"}


@pytest.mark.parametrize(("plugin", "words"), [
    ("broken", ["fake-broken 1.2.3", "boom"]),
    ("dup", ["fake-dup 0.3.0", "vector_mlp"]),
    ("widgets", ["fake-widgets 0.4.0", "anymodal_register_widgets"]),
])
def test_strict_mode_turns_a_failure_into_a_plugin_error(
        on_sys_path: Path, monkeypatch: pytest.MonkeyPatch, plugin: str,
        words: list[str]) -> None:
    monkeypatch.setenv("ANYMODAL_STRICT_PLUGINS", "1")
    monkeypatch.setenv("ANYMODAL_PLUGINS", f"a,{plugin}")
    with pytest.raises(anymodal.PluginError) as info:
        PluginManager().load()
    for word in [*words, "ANYMODAL_STRICT_PLUGINS"]:
        assert word in str(info.value)
    monkeypatch.setenv("ANYMODAL_STRICT_PLUGINS", "0")
    assert _loaded(PluginManager().load()) == {"a"}


def test_plugin_modules_registers_a_module_without_a_distribution(
        on_sys_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_DISABLE_PLUGIN_AUTOLOAD", "1")  # modules load regardless
    monkeypatch.setenv("ANYMODAL_PLUGIN_MODULES", "amtest_loose, amtest_no_such_module")
    manager = PluginManager().load()
    loose = manager.plugins["amtest_loose"]
    assert loose.encoders == ["vector_linear_loose"] and not loose.builtin
    assert loose.distribution == "(ANYMODAL_PLUGIN_MODULES)"
    (failure,) = manager.failures
    assert failure.name == "amtest_no_such_module"
    assert "ModuleNotFoundError" in failure.reason


def test_register_plugin_at_run_time_and_twice(on_sys_path: Path) -> None:
    import amtest_good_a  # type: ignore[import-not-found]

    manager = PluginManager(autoload=False).load()
    assert manager.register_plugin(amtest_good_a, name="in-notebook")
    assert manager.encoders.owner("vector_linear_a") == "in-notebook"
    assert not manager.register_plugin(amtest_good_a, name="again")
    assert "already registered" in manager.failures[-1].reason


# -- through the CLI, in fresh processes --------------------------------------------------


def test_cli_table_lists_plugins_and_failures_and_an_import_time_lookup_does_not_deadlock(
        fake_site: Path, run_python: RunPython) -> None:
    # "eager" calls anymodal.list_modalities() while it is being imported, that is while
    # plugins are loading: a PluginError, reported like any failure (a deadlock or an
    # infinite recursion would hit run_python's timeout or crash the command).
    done = run_python("-m", "anymodal", "plugins", paths=(fake_site,),
                      ANYMODAL_PLUGINS="a,broken,dup,widgets,eager")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    loaded = out[:out.index("plugins that failed to load")]
    assert "fake-good-a" in loaded and "vector_linear_a" in loaded
    assert "vector_mlp" in loaded and "anymodal.builtin.vector" in loaded
    # The reasons wrap at 80 columns: compare with the line breaks joined.
    failed = " ".join(out[out.index("plugins that failed to load"):].split())
    for word in ("broken", "fake-broken", "1.2.3", "boom: calibration table missing",
                 "fake-dup", "0.3.0", "fake-widgets", "anymodal_register_widgets",
                 "fake-eager", "0.5.0", "PluginError", "while plugins were loading"):
        assert word in failed, f"{word!r} missing from the failure table:\n{failed}"


def test_cli_in_strict_mode_exits_with_the_plugin_error(fake_site: Path,
                                                        run_python: RunPython) -> None:
    done = run_python("-m", "anymodal", "plugins", paths=(fake_site,),
                      ANYMODAL_PLUGINS="a,broken", ANYMODAL_STRICT_PLUGINS="1")
    assert done.returncode == 2
    assert "plugin 'broken' (fake-broken 1.2.3): failed to import" in done.stderr
    assert "Traceback" not in done.stderr
