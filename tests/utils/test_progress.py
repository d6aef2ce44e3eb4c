"""Progress bars write to a non-terminal stream at most every N seconds."""

from __future__ import annotations

import io
import time

import pytest

from anymodal.utils.progress import progress_bar, refresh_interval


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO, steps: int = 2000, seconds: float = 0.6) -> str:
    bar = progress_bar(total=steps, desc="embed", file=stream)
    for _ in range(steps):
        time.sleep(seconds / steps)
        bar.update(1)
    bar.close()
    return stream.getvalue()


def test_a_log_gets_the_first_and_last_state_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_PROGRESS_SECONDS", "30")
    out = _run(io.StringIO())
    redraws = out.count("\r") + out.count("\n")
    assert redraws <= 3, out  # the empty bar, the final one, the closing newline
    assert "2000/2000" in out


def test_the_interval_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYMODAL_PROGRESS_SECONDS", "0.2")
    out = _run(io.StringIO(), seconds=1.0)
    redraws = out.count("\r")
    assert 3 <= redraws <= 9, out  # about one per 0.2 s over 1 s, never one per update


def test_a_terminal_keeps_the_live_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYMODAL_PROGRESS_SECONDS", raising=False)
    assert refresh_interval(_Terminal()) is None
    assert refresh_interval(io.StringIO()) == 30.0
    out = _run(_Terminal(), seconds=0.6)
    assert out.count("\r") > 3  # tqdm's default ~10 redraws a second
