"""Progress bars that keep logs small: on a terminal a live bar, elsewhere a line every N s.

tqdm redraws a bar up to ten times a second; on a terminal that is one line rewritten in
place, but in a log file or a CI job each redraw is a new line (48 KB for 300 steps). When
the stream is not a terminal the bar here refreshes at most every :data:`NON_TTY_SECONDS`
seconds (``ANYMODAL_PROGRESS_SECONDS`` changes it), and still prints its final state.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

__all__ = ["NON_TTY_SECONDS", "progress_bar", "refresh_interval"]

NON_TTY_SECONDS = 30.0


def refresh_interval(stream: IO[str] | None = None) -> float | None:
    """Seconds between redraws on ``stream`` (``None``: tqdm's default, a terminal).

    Args:
        stream: where the bar writes (default ``sys.stderr``).
    """
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return None
    return float(os.environ.get("ANYMODAL_PROGRESS_SECONDS", NON_TTY_SECONDS))


def progress_bar(total: int | None = None, *, desc: str = "", unit: str = "it",
                 disable: bool = False, initial: int = 0, file: IO[str] | None = None,
                 **kwargs: Any) -> Any:
    """A ``tqdm`` bar that refreshes at most every N seconds when not on a terminal.

    Args:
        total: the number of steps (``None``: unknown).
        desc: the bar's label.
        unit: the name of one step.
        disable: no bar at all.
        initial: steps already done (a resumed run).
        file: the stream (default ``sys.stderr``).
        **kwargs: any other ``tqdm`` argument.
    """
    from tqdm.auto import tqdm

    interval = refresh_interval(file)
    if interval is not None:
        # mininterval throttles every redraw; maxinterval lets tqdm's monitor thread wait
        # as long, and miniters=1 keeps tqdm from skipping the time check between updates.
        kwargs = {"mininterval": interval, "maxinterval": max(interval, 10.0), "miniters": 1,
                  **kwargs}
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, initial=initial,
                file=file, **kwargs)
