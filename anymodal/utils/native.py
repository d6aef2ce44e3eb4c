"""Capture what native libraries (decord/FFmpeg, libsndfile/mpg123, open3d) print to stderr.

Such libraries write their diagnostics straight to file descriptor 2, around Python's
``sys.stderr``. A plugin redirects the descriptor while a decoder runs, so that a bad file
gives one clean :class:`anymodal.DataError` instead of native noise, and keeps the text to
put the decoder's own reason into that error. It lives in the core, not in each plugin,
because fd 2 belongs to the whole process: one lock must serialise every plugin's use.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from anymodal.errors import DataError

__all__ = ["CapturedStderr", "capture_native_stderr", "decoder_error", "strip_native_prefix"]

# fd 2 is process-wide: two threads must not swap it at the same time.
_LOCK = threading.Lock()


class CapturedStderr:
    """The text written to fd 2 inside :func:`capture_native_stderr` (set on exit)."""

    text: str = ""

    def reason(self, limit: int = 300) -> str:
        """The last non-empty lines, joined, without decord's ``[hh:mm:ss] file.cc:N:`` prefix."""
        lines = [strip_native_prefix(line) for line in self.text.splitlines() if line.strip()]
        joined = "; ".join(dict.fromkeys(lines[-3:]))  # drop repeats, keep order
        return joined[-limit:]


def strip_native_prefix(line: str) -> str:
    """``line`` without its native prefix.

    The prefixes are decord's ``[hh:mm:ss] /path/file.cc:N:`` and FFmpeg's
    ``[mov,mp4 @ 0x55...]``.
    """
    line = line.strip()
    if line.startswith("[") and " @ 0x" in line.split("]", 1)[0]:
        return line.split("]", 1)[1].strip()
    if line.startswith("[") and ".cc:" in line:
        # "[08:22:14] /path/video_reader.cc:83: ERROR opening: x.mp4, No such file"
        tail = line.split(".cc:", 1)[1]
        line = tail.split(":", 1)[1].strip() if ":" in tail else tail
    return line


def decoder_error(failure: BaseException, captured: CapturedStderr, source: Any,
                  stream: str, cannot: str) -> DataError:
    """The :class:`DataError` of a media file that decord/FFmpeg could not read.

    The decoder's exception and what it printed are read together: a missing stream and a
    missing file get their own plain message; anything else keeps the decoder's reason.

    Args:
        failure: what the decoder raised.
        captured: what it wrote to fd 2 meanwhile.
        source: the file (or bytes) the error names.
        stream: ``"audio"`` or ``"video"``, the stream that was looked for.
        cannot: what failed, said to the user (``"cannot open the video (corrupt, ...)"``).
    """
    text = f"{failure} {captured.text}"
    if f"find {stream} stream" in text:
        return DataError(source, f"has no {stream} stream")
    if "No such file" in text:
        return DataError(source, "file not found")
    reason = captured.reason() or strip_native_prefix(str(failure).splitlines()[-1])
    return DataError(source, f"{cannot}: {reason}")


@contextmanager
def capture_native_stderr() -> Iterator[CapturedStderr]:
    """Redirect file descriptor 2 to a temporary file for the duration of the block.

    Yields:
        a :class:`CapturedStderr` whose ``text`` holds what was written, once the block ends.
    """
    captured = CapturedStderr()
    with _LOCK, tempfile.TemporaryFile() as sink:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 at all (some embedded interpreters)
            yield captured
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")
