"""Loading one item under guard: a time limit, file errors and non-finite values.

Each becomes a :class:`DataError` (a counted bad row), never a hang, a crash or a silent NaN.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from anymodal.errors import DataError
from anymodal.types import ModalitySpec

__all__ = ["DEFAULT_LOAD_TIMEOUT", "check_finite", "guarded_item", "time_limit"]

# Seconds one item may take to load and transform before its row is bad (0: no limit).
DEFAULT_LOAD_TIMEOUT = 60.0


class _Expired(Exception):
    """Raised by the alarm inside a load that ran past its time limit."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Expired


@contextlib.contextmanager
def time_limit(seconds: float, source: object) -> Iterator[None]:
    """Raise a :class:`DataError` naming ``source`` when the block runs past ``seconds``.

    It uses ``SIGALRM``, so it applies in the main thread of a process (a DataLoader
    worker runs items there); elsewhere, with ``seconds <= 0``, or while another real-time
    timer is armed (left alone), the block runs unlimited.
    A blocking system call (``open`` of a FIFO) is interrupted too.

    Args:
        seconds: the limit.
        source: what is named in the error.
    """
    usable = (seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)  # never clobber a timer
    if not usable:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise DataError(source, f"did not load within {seconds:g} s (a hung read: a FIFO, "
                        "a stalled network file system?); data.load_timeout sets the "
                        "limit") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _non_finite(value: Any) -> bool:
    """Whether a transformed item holds a NaN or infinite float anywhere."""
    if torch.is_tensor(value):
        return bool(value.is_floating_point() and not torch.isfinite(value).all())
    if isinstance(value, np.ndarray):
        return bool(value.dtype.kind == "f" and not np.isfinite(value).all())
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def check_finite(item: Any, source: object) -> Any:
    """Return ``item``, or raise a :class:`DataError` when it holds NaN or infinity.

    Args:
        item: a transformed item (tensor, array, or a mapping/sequence of them).
        source: what is named in the error.
    """
    if _non_finite(item):
        raise DataError(source, "has NaN or infinite values after its transform (e.g. "
                        "samples or features too large for float32)")
    return item


def guarded_item(spec: ModalitySpec, source: Any, train: bool, timeout: float,
                 name: object) -> Any:
    """``transform(load(source))`` under a time limit, with every failure a DataError.

    Args:
        spec: the bound modality.
        source: the (resolved) source.
        train: apply training augmentation.
        timeout: seconds allowed (``<= 0``: no limit).
        name: how the item is named in errors.
    """
    with time_limit(timeout, name):
        try:
            item = spec.transform(spec.load(source), train)
        except OSError as exc:  # a name too long, a permission, an I/O error
            raise DataError(name, f"cannot be read ({exc.strerror or exc})") from None
    return check_finite(item, name)
