"""Reading ``<subscribers>/*.csv``: UTF-8 with or without a BOM, files in sorted order.

The rows are parsed by ``core.subscribers`` and streamed file by file, line by
line as the ``csv`` module splits them (a file is never held whole in memory),
with duplicates across files reported by ``core.duplicates``: the row the state
saw first keeps the address (``sightings``), else the first in sorted file order.
The addresses kept are remembered in the ``seen`` store given (the state database
when planning), else in memory.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from ..domain.duplicates import Deduplicator, SeenAddresses, Sightings
from ..domain.problems import Problem
from ..domain.subscribers import Subscriber, email_key, parse_subscribers
from ..feeds.files import is_ignored_name

__all__ = ["find_subscriber", "read_subscribers", "subscriber_files"]

BLOCK = 1 << 16  # bytes read at a time when checking the encoding


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
    folder: Path,
    default_language: str,
    seen: SeenAddresses | None = None,
    sightings: Sightings | None = None,
) -> Iterator[Subscriber | Problem]:
    """Every valid subscriber of every file and every problem, in file and line order.

    (A row whose address a later file listed first comes after that file.) A missing
    folder is not an error (a site may have no subscribers yet). A file that is not
    valid UTF-8 is skipped whole, with one problem.
    """
    paths = subscriber_files(folder)
    dedup = Deduplicator(seen, sightings=sightings, sources=[p.name for p in paths])
    for path in paths:
        try:
            _check_utf8(path)  # before any row: a bad file contributes nothing
            # utf-8-sig drops a BOM if a spreadsheet wrote one. newline="": the csv
            # module's own line rules (CR, LF, CRLF; quoted fields may hold them), and
            # the file object streams line by line.
            with path.open(encoding="utf-8-sig", newline="") as stream:
                rows = parse_subscribers(path.name, stream, default_language)
                yield from dedup.filter(rows, path.name)
        except UnicodeDecodeError as exc:
            yield Problem(path.name, f"not UTF-8 ({exc.reason})", "save the file as UTF-8 CSV")
        except OSError as exc:
            yield Problem(path.name, f"cannot read: {exc.strerror}", "check its permissions")
    yield from dedup.finish()


def find_subscriber(folder: Path, default_language: str, email: str) -> list[Subscriber]:
    """Every file's first valid row for ``email``, files in sorted order.

    For one address, not the list: a file is parsed only if its text contains the
    address (case-insensitively), and parsing stops at the row. When several files
    list it, the caller picks the row planning keeps (the one the state saw first,
    ``core.duplicates``). Nothing is kept.
    """
    key = email_key(email)
    found: list[Subscriber] = []
    for path in subscriber_files(folder):
        try:
            if not _mentions(path, key):
                continue
            _check_utf8(path)  # read_subscribers skips such a file whole: so do we
            with path.open(encoding="utf-8-sig", newline="") as stream:
                for item in parse_subscribers(path.name, stream, default_language):
                    if isinstance(item, Subscriber) and email_key(item.email) == key:
                        found.append(item)
                        break
        except (OSError, UnicodeDecodeError):
            continue
    return found


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
