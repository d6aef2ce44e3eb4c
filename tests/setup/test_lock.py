"""The lock is the install: every package in the venv is pinned, at the pinned version.

``make install`` syncs ``.venv`` to ``requirements/lock.txt``; these tests catch a venv that
drifted from it (a package installed by hand, a pin changed without a re-sync) and a lock
that no longer satisfies the loose requirements it was compiled from.
"""

from __future__ import annotations

import re
import site
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")

in_make_venv = pytest.mark.skipif(
    not (Path(sys.prefix) / ".anymodal-installed").exists(),
    reason="not the venv that `make install` manages (no .anymodal-installed stamp)",
)


def locked_pins() -> dict[str, str]:
    """``requirements/lock.txt`` as canonical name -> exact version."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def local_projects() -> set[str]:
    """The projects of this repository that the lock installs in editable mode (``-e``)."""
    names = set()
    for line in LOCK.read_text().splitlines():
        if line.startswith("-e "):
            pyproject = ROOT / line[3:].strip() / "pyproject.toml"
            found = re.search(r'^name\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
            assert found, f"{pyproject} has no [project] name"
            names.add(canonicalize_name(found.group(1)))
    return names


def installed() -> dict[str, str]:
    """What the venv's site-packages holds (as ``pip freeze`` sees it)."""
    found = {}
    for dist in metadata.distributions(path=site.getsitepackages()):
        found[canonicalize_name(dist.metadata["Name"])] = dist.version
    return found


def test_the_lock_pins_every_package_exactly():
    pins = locked_pins()
    assert len(pins) > 100
    assert pins["torch"] == "2.11.0" and pins["torchaudio"] == "2.11.0"
    loose = [line for line in LOCK.read_text().splitlines()
             if line and not line.startswith(("#", " ", "-e ")) and not PIN.match(line)]
    assert loose == [], f"lines of {LOCK} that are not exact pins: {loose}"


@pytest.mark.parametrize("source", ["base.txt", "dev.txt"])
def test_the_lock_satisfies_the_loose_requirements(source):
    pins = locked_pins()
    for line in (ROOT / "requirements" / source).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{source} asks for {line!r}, which {LOCK.name} does not pin"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{source} asks for {line!r} but {LOCK.name} pins {pins[name]}: run `make lock`")


@in_make_venv
def test_the_venv_holds_exactly_the_lock():
    pins, found, local = locked_pins(), installed(), local_projects()
    wrong = {n: (found[n], v) for n, v in pins.items() if n in found and found[n] != v}
    missing = sorted(n for n in pins if n not in found)
    extra = sorted(n for n in found if n not in pins and n not in local)
    assert not wrong, f"installed != locked (installed, locked): {wrong}; run `make install`"
    assert not missing, f"locked but not installed: {missing}; run `make install`"
    assert not extra, f"installed but not in the lock: {extra}; add them to requirements/ and " \
                      "run `make lock`, or remove them with `make install`"
    assert local <= set(found), f"local projects not installed: {sorted(local - set(found))}"
