"""``anymodal doctor``: one line per problem, and ``--strict`` fails a broken install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anymodal import DoctorCheck
from anymodal.cli.doctor import BROKEN, MISSING, OK, explain_failure, run_check

ABI_ERROR = ("{root}/torchaudio/lib/libtorchaudio.so: undefined symbol: "
             "torch_exception_get_what_without_backtrace")


def _fake_torchaudio(root: Path, version: str = "2.11.1") -> Path:
    """A torchaudio whose extension fails as 2.11.1's does over torch 2.11.0, with metadata."""
    package = root / "torchaudio"
    package.mkdir(parents=True)
    message = ABI_ERROR.format(root=root)
    (package / "__init__.py").write_text(f"raise OSError({message!r})\n")
    info = root / f"torchaudio-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torchaudio\nVersion: {version}\n")
    return root


def _doctor(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath),
                                                          env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "anymodal", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_strict_fails_in_one_line_when_torchaudio_was_built_for_another_torch(tmp_path):
    fake = _fake_torchaudio(tmp_path / "site")
    done = _doctor("--strict", "--only", "audio:*", pythonpath=fake)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    [line] = [x for x in done.stdout.splitlines() if "torchaudio" in x]
    assert line.startswith(BROKEN)
    assert "torchaudio 2.11.1" in line and "does not load with torch 2.11.0" in line
    assert "undefined symbol torch_exception_get_what_without_backtrace" in line
    assert "fix: make install" in line and "'torchaudio==2.11.0'" in line
    assert "audio: torchaudio" in done.stderr  # the summary names the failed check


def test_strict_passes_on_the_locked_install():
    done = _doctor("--strict", "--only", "audio:*", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["name"]: r for r in json.loads(done.stdout)}
    assert results["audio: torchaudio"]["status"] == OK
    assert "Kaldi fbank" in results["audio: torchaudio"]["detail"]


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
