"""Reading ``<subscribers>/*.csv``: UTF-8 with or without a BOM, files in sorted order.

The rows are parsed by ``core.subscribers`` and streamed file by file, block by
block (a file is never held whole in memory), with duplicates across files reported
(the first file in sorted order wins). The addresses seen are remembered in the
``seen`` store given (the state database when planning), else in memory.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ..core.problems import Problem
from ..core.subscribers import (
    Deduplicator,
    SeenAddresses,
    Subscriber,
    email_key,
    parse_subscribers,
)
from .files import is_ignored_name

__all__ = ["find_subscriber", "read_subscribers", "subscriber_files"]

BLOCK = 1 << 16  # characters read at a time: the lines of one block exist at once


def subscriber_files(folder: Path) -> list[Path]:
    """The CSV files in ``folder`` (not recursive), sorted by name; hidden files ignored."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() == ".csv"
        and not is_ignored_name(p.stem + ".md")  # same rules for hidden/editor files
        and p.is_file()
        and not p.is_symlink()
    )


def read_subscribers(
    folder: Path, default_language: str, seen: SeenAddresses | None = None
) -> Iterator[Subscriber | Problem]:
    """Every valid subscriber of every file and every problem, in file and line order.

    A missing folder is not an error (a site may have no subscribers yet). A file
    that is not valid UTF-8 is skipped whole, with one problem.
    """
    dedup = Deduplicator(seen)
    for path in subscriber_files(folder):
        try:
            _check_utf8(path)  # before any row: a bad file contributes nothing
            # utf-8-sig drops a BOM if a spreadsheet wrote one.
            with path.open(encoding="utf-8-sig") as stream:
                lines = _lines(stream)
                yield from dedup.filter(parse_subscribers(path.name, lines, default_language))
        except UnicodeDecodeError as exc:
            yield Problem(path.name, f"not UTF-8 ({exc.reason})", "save the file as UTF-8 CSV")
        except OSError as exc:
            yield Problem(path.name, f"cannot read: {exc.strerror}", "check its permissions")


def find_subscriber(folder: Path, default_language: str, email: str) -> Subscriber | None:
    """The row planning uses for ``email``: its first valid row, files in sorted order.

    For one address, not the list: a file is parsed only if its text contains the
    address (case-insensitively), and parsing stops at the row. Nothing is kept.
    """
    key = email_key(email)
    for path in subscriber_files(folder):
        try:
            if not _mentions(path, key):
                continue
            _check_utf8(path)  # read_subscribers skips such a file whole: so do we
            with path.open(encoding="utf-8-sig") as stream:
                for item in parse_subscribers(path.name, _lines(stream), default_language):
                    if isinstance(item, Subscriber) and email_key(item.email) == key:
                        return item
        except (OSError, UnicodeDecodeError):
            continue
    return None


def _mentions(path: Path, key: str) -> bool:
    """Whether the file's text may contain ``key``, ignoring case (read block by block)."""
    if not key.isascii():
        return True  # bytes.lower() folds ASCII only: let the parser decide
    needle, tail = key.encode("ascii"), b""
    with path.open("rb") as stream:
        while block := stream.read(BLOCK):
            text = tail + block.lower()
            if needle in text:
                return True
            tail = text[-len(needle) :]
    return False


def _check_utf8(path: Path) -> None:
    """Raise UnicodeDecodeError unless the whole file decodes (without keeping it)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    with path.open("rb") as stream:
        while block := stream.read(BLOCK):
            decoder.decode(block)
    decoder.decode(b"", final=True)


def _lines(stream: TextIO) -> Iterator[str]:
    """The lines of ``stream`` exactly as ``stream.read().splitlines(keepends=True)``."""
    carry = ""
    while block := stream.read(BLOCK):
        lines = (carry + block).splitlines(keepends=True)
        # The last piece may be a line cut in two by the block boundary: keep it.
        carry = lines.pop()
        yield from lines
    if carry:
        yield carry
