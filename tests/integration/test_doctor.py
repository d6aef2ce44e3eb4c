"""``anymodal doctor --strict`` on the audio plugin's checks (torchaudio built for another torch).

(Moved from ``tests/setup/test_doctor.py``: the checks come from the audio plugin.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from anymodal.cli.doctor import BROKEN, OK

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
