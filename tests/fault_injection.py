"""Kill a writer at its n-th rename, exchange or delete: the probe of issue 14, as a helper.

:func:`kill_at` forks; the child counts every ``os.rename``/``os.replace``/``os.unlink``/
``os.rmdir`` and every atomic exchange, and calls ``os._exit`` (as abrupt as SIGKILL: no
``finally``, no cleanup) just before the n-th one. :func:`every_kill_point` runs the writer
once per call it makes, so a test can check that each possible crash leaves a loadable copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import anymodal.utils.atomic as atomic

KILLED = 77  # the child's exit status when it was killed at the chosen call
FINISHED = 0


def _count_and_die(n: int) -> None:
    """Patch the file-system calls of this (child) process to exit at the n-th."""
    counter = [0]

    def wrap(func: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            counter[0] += 1
            if counter[0] == n:
                os._exit(KILLED)
            return func(*args, **kwargs)

        return wrapper

    for name in ("rename", "replace", "unlink", "rmdir"):
        setattr(os, name, wrap(getattr(os, name)))
    atomic._exchange = wrap(atomic._exchange)  # type: ignore[assignment]


def kill_at(n: int, writer: Callable[[], object]) -> bool:
    """Run ``writer`` in a forked child killed at its n-th file-system call.

    Returns:
        ``True`` when the child was killed, ``False`` when it finished first.
    """
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = FINISHED
        try:
            _count_and_die(n)
            writer()
        except BaseException:  # reported through the exit status
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (KILLED, FINISHED):
        raise AssertionError(f"the writer failed in the child (exit status {code})")
    return code == KILLED


def every_kill_point(writer: Callable[[], object], limit: int = 200) -> Iterator[int]:
    """Yield n after the writer was killed at its n-th call, for n = 1, 2, ... until it
    finishes without reaching n (at most ``limit`` points)."""
    for n in range(1, limit + 1):
        if not kill_at(n, writer):
            return
        yield n
    raise AssertionError(f"the writer made more than {limit} file-system calls")
