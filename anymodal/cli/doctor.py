"""``anymodal doctor``: does every dependency of the core and the plugins load and work?

The checks come from the plugins (``anymodal_register_doctor_checks``): each one loads its
dependency and runs one small real computation, because a compiled extension built for
another torch imports fine and fails only when used, or fails to import with an
``undefined symbol`` that says nothing to a newcomer. A plugin that failed to load is
reported too. Each problem is one line: what, which versions, why, and the command that
fixes it. ``make install`` ends with ``anymodal doctor --strict``, so a broken install
fails there instead of in the middle of a demo.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from anymodal.types import DoctorCheck

__all__ = ["CheckResult", "add_parsers", "cmd_doctor", "explain_failure", "installed_version",
           "run_check", "run_checks"]

OK, MISSING, BROKEN = "ok", "missing", "broken"

_UNDEFINED_SYMBOL = re.compile(r"undefined symbol:?\s*(\S+)")
_MISSING_LIBRARY = re.compile(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Args:
        name: the check's name.
        status: ``"ok"``, ``"missing"`` (not installed) or ``"broken"`` (installed, fails).
        detail: the version and what was computed, or the one-line reason of a failure.
        fix: the command that fixes a failure (empty when ok).
        required: whether a *missing* result fails ``--strict``.
    """

    name: str
    status: str
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def fails_strict(self) -> bool:
        """Whether ``anymodal doctor --strict`` exits non-zero because of this result."""
        return self.status == BROKEN or (self.status == MISSING and self.required)


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _versions(packages: tuple[str, ...]) -> str:
    found = [f"{p} {installed_version(p) or '(not installed)'}" for p in packages]
    return ", ".join(found)


def explain_failure(exc: BaseException, packages: tuple[str, ...] = ()) -> str:
    """One line that says why a dependency failed, without a traceback.

    An ``undefined symbol`` from a compiled extension means the binary was built against
    another release of the library it links (torchaudio built for another torch): the
    line names the versions found, so the mismatch can be read off.

    Args:
        exc: what the check raised.
        packages: the distributions involved, whose installed versions are named.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    versions = _versions(packages)
    symbol = _UNDEFINED_SYMBOL.search(text)
    if symbol:
        torch = installed_version("torch")
        return (f"{versions or 'a compiled extension'} does not load with torch {torch}: "
                f"its binary was built for another release (undefined symbol {symbol.group(1)})")
    library = _MISSING_LIBRARY.search(text)
    if library:
        return f"{versions}: the system library {library.group(1)} is missing"
    reason = f"{type(exc).__name__}: {text}"
    if len(reason) > 160:
        reason = reason[:157] + "..."
    return f"{versions}: {reason}" if versions else reason


def _is_missing(exc: BaseException, packages: tuple[str, ...]) -> bool:
    if isinstance(exc, FileNotFoundError):  # a system tool that is not on PATH
        return True
    if not isinstance(exc, ModuleNotFoundError):
        return False
    if packages:
        return any(installed_version(p) is None for p in packages)
    name = (exc.name or "").split(".")[0]
    return bool(name) and importlib.util.find_spec(name) is None


def run_check(check: DoctorCheck) -> CheckResult:
    """Run one check and classify its outcome (never raises for the check's own errors)."""
    try:
        detail = check.run()
    except Exception as exc:  # a broken extension raises OSError, ImportError, RuntimeError...
        status = MISSING if _is_missing(exc, check.packages) else BROKEN
        detail = (str(exc) if isinstance(exc, FileNotFoundError)
                  else "not installed" if status == MISSING
                  else explain_failure(exc, check.packages))
        return CheckResult(check.name, status, detail, check.fix, check.required)
    return CheckResult(check.name, OK, detail, "", check.required)


def run_checks(only: str | None = None) -> list[CheckResult]:
    """Every registered check (plugin by plugin), then one line per plugin that failed to load.

    Args:
        only: a glob; when given, only the checks whose name matches it run (plugin
            failures are always reported).
    """
    from anymodal.plugin_host.manager import get_plugin_manager

    manager = get_plugin_manager()
    names = [name for info in manager.plugins.values() for name in info.doctor_checks
             if only is None or fnmatch.fnmatch(name, only)]
    results = [run_check(manager.doctor_checks.get(name)) for name in names]
    for failure in manager.failures:
        reason = explain_failure(Exception(failure.reason))
        results.append(CheckResult(
            f"plugin {failure.name}", BROKEN, f"{failure.distribution} {failure.version}: {reason}",
            "make install (re-syncs .venv to requirements/lock.txt)",
        ))
    return results


def add_parsers(sub: Any) -> None:
    """Add ``doctor`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("doctor", help="check that every dependency loads and works; say how "
                       "to fix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a check fails (make install ends with this)")
    p.add_argument("--only", metavar="PATTERN", default=None,
                   help="run only the checks whose name matches this glob ('audio:*')")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per check (or JSON); exit 1 under ``--strict`` when one fails.

    Not a table on purpose: a problem stays one line (status, name, why, fix) that a log
    search or a test can pick out whatever the terminal's width.
    """
    from anymodal.cli.output import print_json

    results = run_checks(args.only)
    if args.json:
        print_json([{**r.__dict__, "fails_strict": r.fails_strict} for r in results])
    else:
        width = max((len(r.name) for r in results), default=0)
        for r in results:
            line = f"{r.status:<7}  {r.name:<{width}}  {r.detail}"
            if r.status != OK and r.fix:
                line += f"  -- fix: {r.fix}"
            print(line)
    failed = [r for r in results if r.fails_strict]
    if args.strict and failed:
        print(f"anymodal doctor --strict: {len(failed)} check(s) failed: "
              f"{', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0
