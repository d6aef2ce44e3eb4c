"""``anymodal doctor``: one line per problem (the audio plugin's ``--strict`` checks are in
``tests/integration/test_doctor.py``)."""

from __future__ import annotations

import pytest

from anymodal import DoctorCheck
from anymodal.cli.doctor import BROKEN, MISSING, explain_failure, run_check


def test_a_check_that_raises_is_broken_and_explained():
    def boom() -> str:
        raise RuntimeError("kernel launch failed\nwith details")

    result = run_check(DoctorCheck("x", boom, "do this", ("torch",)))
    assert result.status == BROKEN and result.fails_strict
    assert "\n" not in result.detail and "RuntimeError: kernel launch failed" in result.detail
    assert result.detail.startswith("torch ") and result.fix == "do this"


def test_missing_packages_and_tools_are_missing_not_broken():
    def absent_module() -> str:
        import anymodal_no_such_package  # type: ignore[import-not-found]  # noqa: F401

        return ""

    def absent_tool() -> str:
        raise FileNotFoundError("no-such-tool is not on PATH")

    optional = run_check(DoctorCheck("m", absent_module, required=False))
    assert optional.status == MISSING and not optional.fails_strict
    required = run_check(DoctorCheck("t", absent_tool))
    assert required.status == MISSING and required.fails_strict
    assert required.detail == "no-such-tool is not on PATH"


def test_explain_failure_names_a_missing_system_library():
    exc = OSError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")
    assert "the system library libusb-1.0.so.0 is missing" in explain_failure(exc, ("open3d",))


@pytest.mark.parametrize("name", ["python", "torch", "accelerate"])
def test_core_checks_are_registered(name):
    from anymodal.plugin_host.manager import get_plugin_manager

    assert name in get_plugin_manager().doctor_checks
