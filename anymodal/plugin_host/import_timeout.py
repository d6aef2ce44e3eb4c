"""A plugin's import under a time limit, so that a plugin that hangs cannot hang anymodal.

``ANYMODAL_PLUGIN_IMPORT_TIMEOUT`` (seconds, default 30; ``0``: no limit) bounds each
plugin's import; one that runs past it is a failed plugin like any other (reported, or
raised under ``ANYMODAL_STRICT_PLUGINS``).

How the limit is enforced, and what it can interrupt:

- **In the main thread, with no other real-time timer armed: ``SIGALRM``.** The alarm
  raises inside the import itself, so the import unwinds as any failing import does: the
  half-made module leaves ``sys.modules``, its import lock is released, and nothing keeps
  running afterwards. It interrupts Python code (a loop, ``time.sleep``) and blocking system
  calls (a read from a socket or a FIFO, a lock wait), which Python resumes by running the
  handler first. It cannot interrupt C code that never returns to the interpreter (a
  compiled loop that holds the GIL); no in-process mechanism can, since such code stops
  every thread. The exception is a :class:`BaseException`, so a plugin's ``except
  Exception`` cannot swallow it.
  Its drawback: an import stopped half-way leaves the libraries it was importing half
  imported (what finished stays in ``sys.modules``), which is why the built-in plugins,
  which import torch first, are not limited.
- **In another thread: a worker thread**, joined with the limit. The caller gets its
  answer in time, but the import cannot be stopped: it goes on in the background (a daemon
  thread, ended with the process), still holding that module's import lock, and a module
  that installs signal handlers at import cannot do so there.
- **In the main thread while another real-time timer runs** (a data loader's per-item
  limit, :func:`anymodal.data.guard.time_limit`): no limit of its own; the outer timer is
  left alone and still applies.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from anymodal.errors import ConfigError

__all__ = ["DEFAULT_IMPORT_TIMEOUT", "ImportTimedOut", "bounded_import", "import_timeout"]

DEFAULT_IMPORT_TIMEOUT = 30.0
_VARIABLE = "ANYMODAL_PLUGIN_IMPORT_TIMEOUT"


class ImportTimedOut(BaseException):
    """A plugin's import ran past the limit.

    A BaseException, so that ``except Exception`` in the plugin does not catch it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish importing within {seconds:g} s ({_VARIABLE} sets "
                         "the limit; 0 disables it): it hangs, or waits for something that "
                         "never comes (a network share, a lock, a device)")


def import_timeout() -> float:
    """The limit from ``ANYMODAL_PLUGIN_IMPORT_TIMEOUT`` (default 30 s; ``0``: none).

    Raises:
        ConfigError: the variable is not a non-negative number of seconds.
    """
    text = os.environ.get(_VARIABLE, "").strip()
    if not text:
        return DEFAULT_IMPORT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"{_VARIABLE}={text!r}: expected a number of seconds >= 0 "
                          f"(0: no limit; default {DEFAULT_IMPORT_TIMEOUT:g})")
    return seconds


def _alarm_usable() -> bool:
    return (hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread())


def _with_alarm(load: Callable[[], Any], seconds: float) -> Any:
    """``load()`` with SIGALRM raising :class:`ImportTimedOut` after ``seconds``."""
    armed = [True]

    def expire(signum: int, frame: Any) -> None:
        if armed[0]:  # not once the import has returned (a signal already in flight)
            raise ImportTimedOut(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return load()
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_thread(load: Callable[[], Any], seconds: float, name: str) -> Any:
    """``load()`` in a daemon thread; :class:`ImportTimedOut` when it is not done in time."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = load()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"anymodal-import-{name}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise ImportTimedOut(seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def bounded_import(load: Callable[[], Any], name: str, seconds: float | None = None) -> Any:
    """Run a plugin's ``load()`` (its import) under the time limit.

    Args:
        load: imports the plugin and returns it (an entry point's ``load``).
        name: the plugin's name (names the worker thread).
        seconds: the limit; ``None`` reads :func:`import_timeout`; ``<= 0``: none.

    Raises:
        ImportTimedOut: the import ran past the limit.
    """
    seconds = import_timeout() if seconds is None else seconds
    if seconds <= 0:
        return load()
    if _alarm_usable():
        if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # someone else's timer: leave it
            return load()
        return _with_alarm(load, seconds)
    return _in_thread(load, seconds, name)
