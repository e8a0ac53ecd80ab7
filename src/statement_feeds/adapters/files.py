"""Reading the statements folder: which files count, and their bytes.

Hidden files and folders, editor droppings and non-``.md`` files are ignored
silently. Symlinks, FIFOs, sockets and device files are reported and skipped;
they are never opened, so a FIFO cannot block the build.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core.problems import Problem

__all__ = ["SourceFile", "is_ignored_name", "iter_sources", "read_sources"]

_DROPPING_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig", ".part")


@dataclass(frozen=True, slots=True)
class SourceFile:
    source: str  # relative to the folder, "/"-separated
    data: bytes


def is_ignored_name(name: str) -> bool:
    """Hidden files, editor droppings (``.#x``, ``x~``, ``*.swp``, ``*.tmp``) and non-Markdown."""
    return (
        name.startswith((".", "#")) or name.endswith(_DROPPING_SUFFIXES) or not name.endswith(".md")
    )


def read_sources(root: Path, suffix: str = ".md") -> tuple[list[SourceFile], list[Problem]]:
    """Every statement file under ``root`` (recursively), sorted by path."""
    problems: list[Problem] = []
    return list(iter_sources(root, problems, suffix)), problems


def iter_sources(root: Path, problems: list[Problem], suffix: str = ".md") -> Iterator[SourceFile]:
    """The statement files under ``root`` one at a time, in path order.

    A generator, so that a caller that only hashes most files (a rebuild with a
    warm cache) never holds the whole corpus in memory. Problems are appended to
    ``problems`` as they are found.
    """
    if not root.is_dir():
        problems.append(
            Problem(
                str(root), "statements folder does not exist", "create it or fix paths.statements"
            )
        )
        return
    for relative, path in _walk(root, "", problems):
        if not relative.endswith(suffix):
            continue
        data = _read_regular(path, relative, problems)
        if data is not None:
            yield SourceFile(relative, data)


def _walk(folder: Path, prefix: str, problems: list[Problem]) -> Iterator[tuple[str, Path]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        problems.append(
            Problem(
                prefix or str(folder), f"cannot list folder: {exc.strerror}", "check permissions"
            )
        )
        return
    for entry in entries:
        relative = prefix + entry.name
        if entry.name.startswith("."):
            continue  # hidden files and folders: ignored silently
        if entry.is_symlink():
            # A linked folder would silently hide its statements: report it too.
            if not is_ignored_name(entry.name) or _is_linked_folder(entry):
                problems.append(
                    Problem(
                        relative,
                        "is a symbolic link; links are not followed",
                        "copy the file or folder in instead",
                    )
                )
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), relative + "/", problems)
        elif is_ignored_name(entry.name):
            continue
        elif not entry.is_file(follow_symlinks=False):
            # Reported from lstat, never opened: a socket cannot be opened at all.
            try:
                problems.append(_not_regular(relative, entry.stat(follow_symlinks=False).st_mode))
            except OSError:
                continue  # removed since it was listed: nothing to report
        else:
            yield relative, Path(entry.path)


def _is_linked_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # stat() of the target: never opens it, so cannot block
    except OSError:
        return False


def _not_regular(relative: str, mode: int) -> Problem:
    return Problem(
        relative,
        f"is not a regular file ({_kind(mode)})",
        "remove it from the statements folder",
    )


def _read_regular(path: Path, relative: str, problems: list[Problem]) -> bytes | None:
    """Read a regular file without following links and without blocking on a FIFO."""
    try:
        fd = os.open(
            path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        )
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None  # removed since it was listed: nothing to publish
        problems.append(
            Problem(relative, f"cannot open: {exc.strerror}", "check the file's permissions")
        )
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced since it was listed
            problems.append(_not_regular(relative, info.st_mode))
            return None
        chunks = []
        while chunk := os.read(fd, max(info.st_size, 65536)):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        problems.append(Problem(relative, f"cannot read: {exc.strerror}", "check the file"))
        return None
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
