"""Entry-point discovery for real: pip builds and installs the example third-party plugin.

The plugin (``examples/plugin_timeseries``) is built from a copy of its source with pip
and installed into a temporary ``--target`` folder, never into the virtualenv; fresh
``python`` processes see it through ``PYTHONPATH``, exactly as they would see
``site-packages``. The build is offline: ``--no-build-isolation --no-index`` uses the
virtualenv's own setuptools.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin_timeseries"
DIST_INFO = "anymodal_timeseries-0.1.0.dist-info"
RunPython = Callable[..., subprocess.CompletedProcess[str]]  # the run_python fixture


# Run in a fresh process with the install on PYTHONPATH: build the encoder by name and
# encode a batch of the plugin's own synthetic series.
USE_IT = """
import json, torch, anymodal, anymodal_timeseries
encoder = anymodal.create_encoder("timeseries_cnn1d", width=16)
series = anymodal.get_modality("timeseries", length=32)
batch = series.collate(series.synthesize(2, torch.Generator().manual_seed(0)))
out = encoder(batch)
info = anymodal.get_plugin_manager().plugin_for("encoders", "timeseries_cnn1d")
print(json.dumps({"shape": list(out.shape), "finite": bool(torch.isfinite(out).all()),
                  "class": type(encoder).__name__, "file": anymodal_timeseries.__file__,
                  "distribution": info.distribution, "version": info.version}))
"""


def _plugins(run_python: RunPython, site: Path) -> dict[str, dict]:
    done = run_python("-m", "anymodal", "plugins", "--json", paths=(site,))
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert not [f for f in listing["failures"] if "timeseries" in json.dumps(f)], listing
    return {p["plugin"]: p for p in listing["plugins"]}


def _pip_install(run_python: RunPython, source: Path, site: Path) -> None:
    done = run_python("-m", "pip", "install", "--no-deps", "--no-build-isolation",
                      "--no-index", "--no-warn-script-location", "--target", str(site),
                      str(source))
    assert done.returncode == 0, (
        "pip could not build the example plugin offline; the virtualenv needs "
        "setuptools>=77 (make install provides it)\n" + done.stdout + done.stderr)


@pytest.mark.slow
def test_install_list_use_and_uninstall_the_example_plugin(tmp_path: Path,
                                                           run_python: RunPython) -> None:
    try:
        metadata.distribution("anymodal-timeseries")
    except metadata.PackageNotFoundError:
        pass
    else:  # the test would prove nothing
        pytest.fail("anymodal-timeseries is installed in this environment; this test installs "
                    "it itself (pip uninstall anymodal-timeseries)")

    # Build from a copy, as from a downloaded sdist: the source tree gets no build/ folder.
    source = tmp_path / "anymodal-timeseries"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = tmp_path / "site-packages"
    _pip_install(run_python, source, site)

    dist = metadata.Distribution.at(site / DIST_INFO)
    assert (dist.metadata["Name"], dist.version) == ("anymodal-timeseries", "0.1.0")
    (entry_point,) = dist.entry_points.select(group="anymodal")
    assert (entry_point.name, entry_point.value) == ("timeseries", "anymodal_timeseries")

    # `anymodal plugins` finds it next to the built-ins and every other installed plugin.
    installed = _plugins(run_python, site)
    expected = {"plugin": "timeseries", "distribution": "anymodal-timeseries",
                "version": "0.1.0", "builtin": False, "modalities": ["timeseries"],
                "encoders": ["timeseries_cnn1d"], "objectives": []}
    assert {key: installed["timeseries"].get(key) for key in expected} == expected
    assert {"anymodal.builtin.vector", "anymodal.builtin.objectives"} <= set(installed)

    # create_encoder builds its encoder, imported from the install (not the source tree);
    # the allow-list takes the distribution's name as well as the entry point's.
    done = run_python("-c", USE_IT, paths=(site,), ANYMODAL_PLUGINS="anymodal-timeseries")
    assert done.returncode == 0, done.stderr
    used = json.loads(done.stdout.splitlines()[-1])
    assert used["shape"] == [2, 16] and used["finite"]
    assert used["class"] == "TimeseriesCNN1d"
    assert Path(used["file"]).is_relative_to(site)
    assert (used["distribution"], used["version"]) == ("anymodal-timeseries", "0.1.0")

    # Uninstall as pip does: delete every file the RECORD lists. Nothing may be left over.
    for file in dist.files or ():
        Path(file.locate()).unlink()
    for folder in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()  # fails if a file pip installed was missing from RECORD
    assert not any(site.iterdir())

    after = _plugins(run_python, site)
    assert "timeseries" not in after
    assert set(after) == set(installed) - {"timeseries"}
