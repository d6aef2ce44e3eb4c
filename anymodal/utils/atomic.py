"""One crash-safe replace for folders and files: never a moment without a complete copy.

A writer builds the new copy beside the destination, in a hidden *staging* sibling named
``.<name>.staging-<host>-<pid>-<random>``, then swaps it in:

- on Linux, ``renameat2(RENAME_EXCHANGE)`` swaps the two names in one atomic step (the
  staging name then holds the old copy, deleted afterwards); a new destination is made by a
  plain ``rename``, which is atomic when nothing is there;
- where the exchange is unsupported, the old copy is first renamed aside
  (``.<name>.aside-<host>-<pid>-<random>``) and the new one renamed in. A crash between
  the two renames leaves no copy at the path for a moment, but the aside copy is complete, and
  :func:`recover` (called by every reader before it looks) renames it back.

A single file is written to a hidden staging file and ``os.replace``-d, atomic on POSIX.

Leftovers of dead writers (their pid no longer runs on this host; on a shared file system,
another host's leftovers once a day old) are deleted by :func:`recover`; those of live
writers are left alone, so that two writers may race: the last swap wins and each
cleans its own staging. Everything is created with the process umask's permissions (the
hidden names are made with ``mkdir``/``open``, not ``mkdtemp``/``mkstemp``, whose private
0700/0600 modes would survive the rename) and flushed to disk before the swap.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from anymodal.errors import AnymodalError

__all__ = [
    "atomic_directory",
    "atomic_file",
    "atomic_write_bytes",
    "atomic_write_text",
    "commit",
    "current_umask",
    "discard",
    "recover",
    "stage",
    "sweep",
]

STAGING = "staging"
ASIDE = "aside"
TRASH = "trash"
_HIDDEN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|aside|trash)-(?P<host>\w+)-"
                     r"(?P<pid>\d+)-[0-9a-f]+$")
# On a shared file system another machine's pid means nothing here: its leftovers are
# judged dead only once they are this old (no writer takes a day between two renames).
_FOREIGN_STALE_SECONDS = 24 * 3600
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_UMASK_LOCK = threading.Lock()
_SWAP_ATTEMPTS = 16


def current_umask() -> int:
    """The process umask, read without changing it where ``/proc`` tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:  # the only portable way: set and restore, under a lock
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def hidden_sibling(target: Path, kind: str) -> Path:
    """A fresh hidden name beside ``target`` that :func:`recover` recognises.

    Args:
        target: the destination path.
        kind: ``staging`` (a copy being written), ``aside`` (a complete copy moved away
            during a replace) or ``trash`` (a copy being deleted).
    """
    return target.with_name(
        f".{target.name}.{kind}-{_host()}-{os.getpid()}-{secrets.token_hex(4)}")


def _host() -> str:
    """This machine's name as one word of letters, digits and ``_`` (whose pids apply)."""
    return re.sub(r"\W", "_", socket.gethostname())[:32] or "host"


def _writer_alive(host: str, pid: int, path: Path) -> bool:
    """Whether the writer of a leftover may still run (other machines: by its age)."""
    if host != _host():
        try:
            return time.time() - path.lstat().st_mtime < _FOREIGN_STALE_SECONDS
        except OSError:
            return False
    return _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a live process of another user
    return True


def _remove(path: Path) -> None:
    """Delete a file or a folder tree, if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _leftovers(target: Path) -> list[tuple[str, Path]]:
    """``(kind, path)`` of the hidden siblings of ``target`` left by writers now dead."""
    found: list[tuple[str, Path]] = []
    if not target.parent.is_dir():
        return found
    for child in target.parent.iterdir():
        match = _HIDDEN.match(child.name)
        if match and match["name"] == target.name and not _writer_alive(
                match["host"], int(match["pid"]), child):
            found.append((match["kind"], child))
    return found


def recover(target: str | os.PathLike[str]) -> None:
    """Bring back a complete copy hidden by a crash, then delete dead writers' leftovers.

    When nothing is at ``target`` but a dead writer moved the complete old copy aside, that
    copy is renamed back (the newest if several). Staging copies of dead writers (possibly
    incomplete) are deleted. Readers call this before they look at ``target``.

    Args:
        target: the destination folder or file.
    """
    target = Path(target)
    leftovers = _leftovers(target)
    asides = sorted((p for kind, p in leftovers if kind == ASIDE),
                    key=lambda p: p.stat().st_mtime_ns)
    if asides and not os.path.lexists(target):
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rename(asides[-1], target)
    for _, path in leftovers:
        _remove(path)


def sweep(folder: str | os.PathLike[str]) -> None:
    """:func:`recover` every destination in ``folder`` that has hidden leftovers.

    Args:
        folder: a folder holding several artefacts (e.g. ``checkpoints/``).
    """
    root = Path(folder)
    if not root.is_dir():
        return
    names = {m["name"] for child in root.iterdir() if (m := _HIDDEN.match(child.name))}
    for name in sorted(names):
        recover(root / name)


def discard(path: str | os.PathLike[str]) -> None:
    """Delete a folder or file so that a crash never leaves half of it under its name.

    It is renamed to a hidden ``trash`` sibling first (atomic), then deleted.

    Args:
        path: what to delete (nothing happens if it is absent).
    """
    path = Path(path)
    trash = hidden_sibling(path, TRASH)
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    _remove(trash)


def _libc_renameat2() -> object | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return None


_RENAMEAT2 = _libc_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); ``False`` where unsupported.

    Raises:
        FileNotFoundError: ``b`` does not exist.
    """
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b),  # type: ignore[operator]
                        _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(staging: Path, target: Path) -> None:
    """Put the complete ``staging`` copy at ``target``.

    Afterwards ``staging`` holds the old copy or nothing. Retries when another writer swaps
    at the same moment.
    """
    for _ in range(_SWAP_ATTEMPTS):
        try:
            if _exchange(staging, target):
                return
            exchanged = os.path.lexists(target) and _aside_then_in(staging, target)
        except FileNotFoundError:
            exchanged = False  # nothing at target yet: a plain rename below
        if exchanged or _rename_in(staging, target):
            return
    raise AnymodalError(f"could not replace {target}: other writers kept replacing it")


def _aside_then_in(staging: Path, target: Path) -> bool:
    """Move the old copy aside, rename the new one in, delete the old one (no exchange).

    Returns ``False`` when another writer got in between (the caller retries).
    """
    aside = hidden_sibling(target, ASIDE)
    os.rename(target, aside)  # FileNotFoundError if another writer moved it first
    try:
        placed = _rename_in(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(aside, target)  # put the complete old copy back
        raise
    _remove(aside)
    return placed


def _rename_in(staging: Path, target: Path) -> bool:
    """``rename(staging, target)``; ``False`` when another writer put a copy there first."""
    try:
        os.rename(staging, target)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            return False
        raise
    return True


def _settle(root: Path, mask: int, durable: bool = True) -> None:
    """Give everything under ``root`` the umask's permissions and flush it to disk."""
    paths = [root] if root.is_file() else [root, *root.rglob("*")]
    for path in paths:
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, 0o777 & ~mask)
            continue
        executable = path.stat().st_mode & 0o111
        os.chmod(path, (0o777 if executable else 0o666) & ~mask)
        if durable:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse to open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def stage(target: str | os.PathLike[str]) -> Path:
    """Make the empty staging folder for a new copy of ``target`` (after :func:`recover`).

    Fill it, then :func:`commit` it; on failure, :func:`discard` it. Use
    :func:`atomic_directory` unless several processes fill one staging folder.

    Args:
        target: the destination folder.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    staging = hidden_sibling(target, STAGING)
    os.mkdir(staging)  # the umask applies, unlike mkdtemp's 0700
    return staging


def commit(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Swap a complete staging folder in at ``target`` and delete the old copy.

    Args:
        staging: a folder made by :func:`stage`, now complete.
        target: the destination folder.
    """
    staging, target = Path(staging), Path(target)
    try:
        _settle(staging, current_umask())
        _swap_in(staging, target)
    finally:
        _remove(staging)  # the failed new copy, or the old one after an exchange
    _fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a folder crash-safely through the yielded staging folder.

    The staging folder replaces ``target`` when the block ends without an exception, and is
    deleted when it raises.

    Args:
        target: the destination folder (created, or replaced as a whole).

    Example::

        with atomic_directory("out/model") as tmp:
            (tmp / "config.yaml").write_text(text)
    """
    staging = stage(target)
    try:
        yield staging
    except BaseException:
        _remove(staging)
        raise
    commit(staging, target)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], durable: bool = True) -> Iterator[Path]:
    """Write a file crash-safely through the yielded staging path.

    Write to the staging path (a library may create it); it replaces ``target`` in one
    ``os.replace`` when the block ends without error. A file is never absent or torn, so
    nothing is recovered first (no scan of the folder: cheap for caches of many files); a
    crashed writer's hidden staging file is deleted by a later :func:`sweep` of the folder.

    Args:
        target: the destination file.
        durable: flush the file and the folder to disk (off for caches that can be rebuilt).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = hidden_sibling(target, STAGING)
    try:
        yield staging
        if not staging.is_file():
            raise AnymodalError(f"nothing was written for {target} (expected a file at "
                                f"{staging})")
        _settle(staging, current_umask(), durable)
        os.replace(staging, target)
    finally:
        _remove(staging)
    if durable:
        _fsync_dir(target.parent)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, durable: bool = True
                       ) -> Path:
    """Replace ``target`` with ``data`` crash-safely; returns its path.

    Args:
        target: the destination file.
        data: its new content.
        durable: flush it to disk before the rename (see :func:`atomic_file`).
    """
    with atomic_file(target, durable) as staging:
        staging.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Replace ``target`` with ``text`` (UTF-8) crash-safely; returns its path.

    Args:
        target: the destination file.
        text: its new content.
    """
    return atomic_write_bytes(target, text.encode("utf-8"))
