"""The external programs the builder runs (espeak-ng, ffmpeg), with clear failures."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from anymodal import PluginError

__all__ = ["TOOLS", "ToolError", "ToolNotFoundError", "atomic_path", "require_tools",
           "run_tool"]

# Program -> (Debian package, the modality that needs it).
TOOLS = {"espeak-ng": ("espeak-ng", "audio"), "ffmpeg": ("ffmpeg", "video")}


class ToolNotFoundError(PluginError):
    """A program the builder needs is not installed."""


class ToolError(PluginError):
    """A program the builder ran failed."""


def _missing_message(program: str) -> str:
    package, modality = TOOLS[program]
    return (f"{program} is not installed (on PATH); the digits data set needs it for the "
            f"{modality!r} modality. Install it with: sudo apt-get install -y {package} "
            f"(or build without it, e.g. --modalities with no {modality})")


def require_tools(modalities: Sequence[str]) -> None:
    """Raise :class:`ToolNotFoundError` when a program that ``modalities`` need is missing."""
    for program, (_, modality) in TOOLS.items():
        if modality in modalities and shutil.which(program) is None:
            raise ToolNotFoundError(_missing_message(program))


def run_tool(command: list[str], what: str, stdin: bytes | None = None) -> None:
    """Run ``command``; a missing program or a non-zero exit raises with its stderr.

    Args:
        command: the program and its arguments.
        what: the item being made, for the message (a file name).
        stdin: bytes fed to the program's standard input.
    """
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise ToolNotFoundError(_missing_message(command[0])) from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise ToolError(f"{command[0]} failed making {what} (exit {done.returncode}): "
                        + (detail[-1] if detail else "no message"))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary name next to ``path`` that becomes ``path`` once written.

    The suffix is kept, so tools pick the format from it. An interrupted build leaves no
    partial file under the final name, so resuming may trust every file that exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
