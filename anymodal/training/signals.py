"""SIGINT/SIGTERM while training: finish the current step, save a checkpoint, then exit."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["StopRequest", "catch_stop_signals"]


class StopRequest:
    """Set by the signal handler; read by the loop after every optimiser step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """Whether SIGINT or SIGTERM arrived."""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # a second signal: the user insists
            raise KeyboardInterrupt
        self.signum = signum


@contextmanager
def catch_stop_signals() -> Iterator[StopRequest]:
    """Install the handlers for the duration of training and restore the old ones after."""
    request = StopRequest()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, request._handle)
        except ValueError:  # not the main thread (e.g. a notebook's worker): no handler
            pass
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
