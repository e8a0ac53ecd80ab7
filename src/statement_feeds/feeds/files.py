"""Reading the statements folder: which files count, and their bytes.

Hidden files and folders, editor droppings and non-``.md`` files are ignored
silently. Symlinks, FIFOs, sockets and device files are reported and skipped;
they are never opened, so a FIFO cannot block the build. A file larger than
``max_bytes`` (``feeds.max_statement_bytes``) is reported and skipped without
being read, and no file is read past that size, even one growing meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..domain.problems import Problem

__all__ = [
    "Listed",
    "Signature",
    "SourceFile",
    "Unchanged",
    "is_ignored_name",
    "iter_sources",
    "read_source",
    "read_sources",
]

_DROPPING_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig", ".part")
_TOO_BIG_FIX = "split the statement into smaller files, or raise feeds.max_statement_bytes"


Signature = str
"""``size:mtime_ns:ctime_ns:inode`` of a file, taken before reading it.

Only a hint that a file is unchanged: any write changes ctime, which no user
command can set back, so a rebuild may skip reading a file whose signature is
the one recorded with its content key.
"""


@dataclass(frozen=True, slots=True)
class SourceFile:
    source: str  # relative to the folder, "/"-separated
    data: bytes
    signature: Signature = ""


@dataclass(frozen=True, slots=True)
class Unchanged:
    """A file the caller said it already knows (same signature): not read."""

    source: str
    signature: Signature


@dataclass(frozen=True, slots=True)
class Listed:
    """A file to be read by someone else (``iter_sources(read=False)``): a worker
    process reads it with :func:`read_source`, so its bytes never pass through here."""

    source: str
    path: str
    signature: Signature


def is_ignored_name(name: str) -> bool:
    """Hidden files, editor droppings (``.#x``, ``x~``, ``*.swp``, ``*.tmp``) and non-Markdown."""
    return (
        name.startswith((".", "#")) or name.endswith(_DROPPING_SUFFIXES) or not name.endswith(".md")
    )


def read_sources(root: Path, suffix: str = ".md") -> tuple[list[SourceFile], list[Problem]]:
    """Every statement file under ``root`` (recursively), sorted by path."""
    problems: list[Problem] = []
    files = [f for f in iter_sources(root, problems, suffix) if isinstance(f, SourceFile)]
    return files, problems


def iter_sources(
    root: Path,
    problems: list[Problem],
    suffix: str = ".md",
    known: Callable[[str, Signature], bool] | None = None,
    *,
    read: bool = True,
    max_bytes: int | None = None,
) -> Iterator[SourceFile | Unchanged | Listed]:
    """The statement files under ``root`` one at a time, in path order.

    A generator, so that a caller that only hashes most files (a rebuild with a
    warm cache) never holds the whole corpus in memory. Problems are appended to
    ``problems`` as they are found. When ``known(source, signature)`` is true the
    file is not read and an :class:`Unchanged` is yielded instead. With
    ``read=False`` the other files are not read either but yielded as
    :class:`Listed`, for :func:`read_source` elsewhere (in worker processes).
    A file larger than ``max_bytes`` is reported, not yielded: also an unchanged one
    (the limit may have been lowered since it was read).
    """
    if not root.is_dir():
        problems.append(
            Problem(
                str(root),
                "statements folder does not exist",
                "create it or fix paths.statements; the feeds are left as they were",
                incomplete=True,
            )
        )
        return
    for relative, entry in _walk(str(root), "", problems):
        if not relative.endswith(suffix):
            continue
        if known is not None or not read:
            info = _lstat(entry)
            if info is not None and max_bytes is not None and info.st_size > max_bytes:
                problems.append(_too_big(relative, info.st_size, max_bytes))
                continue
            signature = _signature_of(info) if info is not None else ""
            if known is not None and signature and known(relative, signature):
                yield Unchanged(relative, signature)
                continue
            if not read:
                yield Listed(relative, entry.path, signature)
                continue
        file, found = read_source(entry.path, relative, max_bytes=max_bytes)
        problems.extend(found)
        if file is not None:
            yield file


def read_source(
    path: str, relative: str, *, max_bytes: int | None = None
) -> tuple[SourceFile | None, list[Problem]]:
    """One file's bytes and signature, or the problems that kept it from being read
    (among them: larger than ``max_bytes``).

    ``None`` without problems: it was removed since it was listed (nothing to publish).
    """
    problems: list[Problem] = []
    read = _read_regular(path, relative, problems, max_bytes)
    return (SourceFile(relative, *read) if read is not None else None), problems


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)  # lstat, cached by the DirEntry
    except OSError:
        return None


def _signature_of(info: os.stat_result) -> Signature:
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"


def _walk(
    folder: str, prefix: str, problems: list[Problem]
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    # Plain strings, not pathlib: a rebuild walks every file, and Path objects were
    # a visible part of its time.
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        problems.append(
            Problem(
                prefix or folder,
                f"cannot list folder: {exc.strerror}",
                "check permissions; the feeds are left as they were until it can be read",
                incomplete=True,
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
            yield from _walk(entry.path, relative + "/", problems)
        elif is_ignored_name(entry.name):
            continue
        elif not entry.is_file(follow_symlinks=False):
            # Reported from lstat, never opened: a socket cannot be opened at all.
            try:
                problems.append(_not_regular(relative, entry.stat(follow_symlinks=False).st_mode))
            except OSError:
                continue  # removed since it was listed: nothing to report
        else:
            yield relative, entry


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


def _too_big(relative: str, size: int, limit: int) -> Problem:
    return Problem(
        relative, f"is {size} bytes, more than feeds.max_statement_bytes ({limit})", _TOO_BIG_FIX
    )


def _read_regular(
    path: str, relative: str, problems: list[Problem], max_bytes: int | None
) -> tuple[bytes, Signature] | None:
    """Read a regular file without following links and without blocking on a FIFO,
    nor past ``max_bytes``.

    The signature is taken before reading: a write during the read changes it, so
    the next build reads the file again.
    """
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
        limit = sys.maxsize - 1 if max_bytes is None else max_bytes
        if info.st_size > limit:  # grown since it was listed, or never listed
            problems.append(_too_big(relative, info.st_size, limit))
            return None
        data = _read_upto(fd, info.st_size, limit + 1)
        if len(data) > limit:
            message = f"grew past feeds.max_statement_bytes ({limit}) while being read"
            problems.append(Problem(relative, message, _TOO_BIG_FIX))
            return None
        return data, _signature_of(info)
    except OSError as exc:
        problems.append(Problem(relative, f"cannot read: {exc.strerror}", "check the file"))
        return None
    finally:
        os.close(fd)


def _read_upto(fd: int, size: int, cap: int) -> bytes:
    """The file's bytes, but at most ``cap`` of them.

    One read for the common case (a regular file reads in full up to its ``size``,
    as fstat gave it); a file that grew meanwhile is read on to its end or ``cap``.
    """
    data = os.read(fd, min(size + 1, cap))
    chunks, total = [data], len(data)
    while data and size < total < cap:
        data = os.read(fd, min(65536, cap - total))
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
