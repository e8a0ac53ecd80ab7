"""Reading ``<subscribers>/*.csv``: UTF-8 with or without a BOM, files in sorted order.

The rows are parsed by ``core.subscribers`` and streamed file by file, with
duplicates across files reported (the first file in sorted order wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..core.problems import Problem
from ..core.subscribers import Deduplicator, Subscriber, parse_subscribers
from .files import is_ignored_name

__all__ = ["read_subscribers", "subscriber_files"]


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


def read_subscribers(folder: Path, default_language: str) -> Iterator[Subscriber | Problem]:
    """Every valid subscriber of every file and every problem, in file and line order.

    A missing folder is not an error (a site may have no subscribers yet).
    """
    dedup = Deduplicator()
    for path in subscriber_files(folder):
        try:
            # utf-8-sig drops a BOM if a spreadsheet wrote one.
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            yield Problem(path.name, f"not UTF-8 ({exc.reason})", "save the file as UTF-8 CSV")
            continue
        except OSError as exc:
            yield Problem(path.name, f"cannot read: {exc.strerror}", "check its permissions")
            continue
        yield from dedup.filter(parse_subscribers(path.name, text, default_language))
