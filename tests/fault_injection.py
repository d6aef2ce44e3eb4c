"""Kill a writer at its n-th rename, exchange or delete: the probe of issue 14, as a helper.

:func:`kill_at` forks; the child counts every ``os.rename``/``os.replace``/``os.unlink``/
``os.rmdir`` and every atomic exchange, and calls ``os._exit`` (as abrupt as SIGKILL: no
``finally``, no cleanup) just before the n-th one. :func:`every_kill_point` runs the writer
once per call it makes, so a test can check that each possible crash leaves a loadable copy.
:func:`race` runs several writers at once, each in its own forked child.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

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


def _fork(body: Callable[[], object]) -> int:
    """Run ``body`` in a forked child and return its pid; the child exits with
    :data:`FINISHED`, or 1 when ``body`` raised (it never returns into pytest)."""
    pid = os.fork()
    if pid == 0:
        code = FINISHED
        try:
            body()
        except BaseException:  # reported through the exit status
            code = 1
        os._exit(code)
    return pid


def _exit_code(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def kill_at(n: int, writer: Callable[[], object]) -> bool:
    """Run ``writer`` in a forked child killed at its n-th file-system call.

    Returns:
        ``True`` when the child was killed, ``False`` when it finished first.
    """

    def body() -> None:
        _count_and_die(n)
        writer()

    code = _exit_code(_fork(body))
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


def race(writers: Sequence[Callable[[], object]]) -> None:
    """Run every writer at the same time, each in its own forked child, until all finish.

    Raises:
        AssertionError: a writer raised in its child (exit statuses listed).
    """
    codes = [_exit_code(pid) for pid in [_fork(writer) for writer in writers]]
    if codes != [FINISHED] * len(writers):
        raise AssertionError(f"a racing writer failed in its child (exit statuses {codes})")
