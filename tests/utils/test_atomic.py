"""The crash-safe replace: every kill point leaves a complete copy, races, permissions."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import anymodal.utils.atomic as atomic
from anymodal.errors import AnymodalError
from anymodal.utils.atomic import atomic_directory, atomic_write_text, recover
from tests.fault_injection import every_kill_point, race


def _write(target: Path, version: str) -> None:
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text(version)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text(version)


def _version(target: Path) -> str:
    """The folder's version, checking that it is complete and consistent."""
    a = (target / "a.txt").read_text()
    assert (target / "sub" / "b.txt").read_text() == a
    return a


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def no_exchange(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The portable path: no renameat2, so the old copy is renamed aside first."""
    monkeypatch.setattr(atomic, "_RENAMEAT2", None)
    yield


def test_replace_leaves_the_new_copy_and_nothing_hidden(tmp_path: Path) -> None:
    target = tmp_path / "art"
    _write(target, "v1")
    _write(target, "v2")
    assert _version(target) == "v2"
    assert _hidden(tmp_path) == []


def test_an_error_inside_the_block_keeps_the_old_copy(tmp_path: Path) -> None:
    target = tmp_path / "art"
    _write(target, "v1")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("writer failed")
    assert _version(target) == "v1"
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "aside"])
def test_a_kill_at_any_rename_or_delete_leaves_a_complete_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:
        monkeypatch.setattr(atomic, "_RENAMEAT2", None)
    elif atomic._RENAMEAT2 is None:
        pytest.fail("renameat2 is expected on the Linux machines this suite runs on")
    target = tmp_path / "art"
    _write(target, "v1")
    points = 0
    for _ in every_kill_point(lambda: _write(target, "v2")):
        points += 1
        if exchange:  # never a moment without a complete copy at the path
            assert _version(target) in ("v1", "v2")
        recover(target)  # what every reader does first
        assert _version(target) in ("v1", "v2")
        assert _hidden(tmp_path) == [], "recover leaves no staging or aside copy"
        _write(target, "v1")
    assert points >= 3  # the swap, and the deletes of the old copy


def test_recover_leaves_a_live_writers_staging_alone(tmp_path: Path) -> None:
    target = tmp_path / "art"
    _write(target, "v1")
    mine = atomic.hidden_sibling(target, atomic.STAGING)  # this process is alive
    mine.mkdir()
    dead = target.with_name(f".{target.name}.staging-{atomic._host()}-999999999-abcd1234")
    dead.mkdir()
    recover(target)
    assert mine.exists() and not dead.exists()


def test_another_hosts_leftovers_are_kept_until_a_day_old(tmp_path: Path) -> None:
    # On a shared file system a pid of another machine says nothing about its writer.
    target = tmp_path / "art"
    _write(target, "v1")
    fresh = target.with_name(f".{target.name}.staging-otherhost-1-abcd1234")
    old = target.with_name(f".{target.name}.staging-otherhost-2-abcd1234")
    fresh.mkdir()
    old.mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    recover(target)
    assert fresh.exists() and not old.exists()


def test_a_crash_between_the_aside_renames_is_recovered(tmp_path: Path, no_exchange: None
                                                        ) -> None:
    target = tmp_path / "art"
    _write(target, "v1")
    aside = target.with_name(f".{target.name}.aside-{atomic._host()}-999999999-00ff00ff")
    os.rename(target, aside)  # as a writer killed between its two renames leaves it
    recover(target)
    assert _version(target) == "v1" and _hidden(tmp_path) == []


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_files_and_folders_get_the_umask_permissions(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        _write(tmp_path / "art", "v1")
        atomic_write_text(tmp_path / "file.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "art").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "art" / "sub").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "art" / "a.txt").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "file.json").stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "aside"])
def test_two_writers_racing_leave_one_complete_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:
        monkeypatch.setattr(atomic, "_RENAMEAT2", None)
    target = tmp_path / "art"

    def writes(name: str) -> None:
        for i in range(40):
            _write(target, f"{name}{i}")

    race([lambda: writes("x"), lambda: writes("y")])
    recover(target)
    assert _version(target) in ("x39", "y39")
    assert _hidden(tmp_path) == []


def test_single_files_are_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")
    for _ in every_kill_point(lambda: atomic_write_text(target, "new")):
        assert target.read_text() in ("old", "new")
        recover(target)
        assert _hidden(tmp_path) == []
    assert target.read_text() == "new"


def test_a_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AnymodalError, match="nothing was written"), \
            atomic.atomic_file(tmp_path / "x.bin"):
        pass
    assert not (tmp_path / "x.bin").exists()


def test_single_file_writes_scan_nothing_and_may_skip_the_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cache writes many files into one folder: no per-write scan of it, and no fsync
    # when the caller can rebuild the file.
    monkeypatch.setattr(atomic, "recover", lambda target: pytest.fail("scanned the folder"))
    flushes: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: flushes.append(fd) or real_fsync(fd))
    atomic.atomic_write_bytes(tmp_path / "a.bin", b"x", durable=False)
    assert flushes == [] and (tmp_path / "a.bin").read_bytes() == b"x"
    atomic.atomic_write_bytes(tmp_path / "b.bin", b"y")
    assert len(flushes) == 2  # the file, then its folder
