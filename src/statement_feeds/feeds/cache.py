"""Build cache in the state folder: parsed statements, file hints, document fingerprints.

Keyed by file content (not mtime), so a rebuild after one edit parses and renders
only what changed. It is only a cache: if it is missing or damaged it is
recreated and the build does the full work again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Set
from datetime import datetime, tzinfo
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from ..domain.statements import Statement
from .parse import KeyText

__all__ = ["BuildCache", "FileHint"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parsed (
    key TEXT PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, lang TEXT NOT NULL,
    translation_key TEXT NOT NULL, title TEXT NOT NULL,
    published TEXT NOT NULL, published_zone TEXT, updated TEXT NOT NULL, updated_zone TEXT,
    url TEXT NOT NULL, summary TEXT NOT NULL, author TEXT NOT NULL, draft INTEGER NOT NULL,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (path TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY, signature TEXT NOT NULL, key TEXT NOT NULL
);
"""
_VERSION = 6  # bump to discard caches written by an older format
# Statements are stored as plain columns, not pickles: every build loads all of them,
# and unpickling 10,000 (a ZoneInfo is a Python call per datetime) took longer than
# planning every feed. Datetimes keep their instant (ISO 8601 with offset) and their
# zone (a ZoneInfo key, or NULL for a fixed offset).
_COLUMNS = (
    "key, source, id, lang, translation_key, title, published, published_zone, updated,"
    " updated_zone, url, summary, author, draft, digest"
)


FileHint = tuple[str, KeyText]
"""What a build recorded of one file: (its signature, the key it parsed to). A plain
tuple: one per file per build (a NamedTuple is made by a Python-level __new__)."""


class BuildCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.OperationalError:
            raise  # locked or unreadable: another process may be using it, never delete
        except sqlite3.DatabaseError:
            # A damaged cache is worth nothing: start a new one.
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(self.path) + suffix).unlink()
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # No fsync at all: this is a cache. Its rows are keyed by file content, so one
        # lost or older row is a miss or still right; output files are fsynced before
        # their fingerprints are recorded; a file damaged by a crash is recreated. A
        # first build's checkpoint fsync of ~15 MB cost more than the inserts.
        db.execute("PRAGMA synchronous=OFF")
        if db.execute("PRAGMA user_version").fetchone()[0] != _VERSION:
            for table in ("parsed", "html", "documents", "files", "meta"):  # html: before v4
                db.execute(f"DROP TABLE IF EXISTS {table}")
            db.execute(f"PRAGMA user_version={_VERSION}")
        db.executescript(_SCHEMA)
        return db

    def __enter__(self) -> BuildCache:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def parsed(self) -> dict[KeyText, Statement]:
        found: dict[KeyText, Statement] = {}
        zones: dict[str, tzinfo] = {}  # one object per zone: same-zone comparisons are fast
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM parsed"):
            try:  # (a try costs nothing in 3.11; a context manager per row did)
                found[row[0]] = _statement(row, zones)
            except Exception:  # an unreadable row is just a miss
                continue
        return found

    def store_parsed(self, items: Iterable[tuple[KeyText, Statement]], keep: Set[str]) -> None:
        """Add new rows and drop those no longer used (``keep``), in one transaction."""
        with self._transaction():
            self._insert_parsed(items)
            stale = [(k,) for (k,) in self._db.execute("SELECT key FROM parsed") if k not in keep]
            self._db.executemany("DELETE FROM parsed WHERE key = ?", stale)

    def add_parsed(self, items: Iterable[tuple[KeyText, Statement]]) -> None:
        """Add new rows (a batch while parsing goes on); :meth:`store_parsed` ends it."""
        with self._transaction():
            self._insert_parsed(items)

    def _insert_parsed(self, items: Iterable[tuple[KeyText, Statement]]) -> None:
        self._db.executemany(
            f"INSERT OR REPLACE INTO parsed ({_COLUMNS}) VALUES ({_VALUES})",
            (_row(key, statement) for key, statement in items),
        )

    def file_hints(self) -> dict[str, FileHint]:
        """source → (signature, parse key) recorded by the last build."""
        rows = self._db.execute("SELECT source, signature, key FROM files").fetchall()
        return {source: (signature, key) for source, signature, key in rows}

    def store_file_hints(
        self, hints: dict[str, FileHint], previous: dict[str, FileHint] | None = None
    ) -> None:
        """Record ``hints``; with the ``previous`` ones (as read), write only the difference:
        a rebuild after one edit changes one row of 10,000."""
        with self._transaction():
            if previous is None:
                self._db.execute("DELETE FROM files")
                changed = hints
                gone: list[str] = []
            else:
                changed = {s: v for s, v in hints.items() if previous.get(s) != v}
                gone = [s for s in previous if s not in hints]
            self._db.executemany("DELETE FROM files WHERE source = ?", ((s,) for s in gone))
            self._db.executemany(
                "INSERT OR REPLACE INTO files (source, signature, key) VALUES (?, ?, ?)",
                ((source, sig, key) for source, (sig, key) in changed.items()),
            )

    def last_build(self) -> dict[str, str]:
        """What the last build recorded (``at``, ``statements``, ``problems``, ``written``)."""
        return dict(self._db.execute("SELECT name, value FROM meta").fetchall())

    def store_last_build(self, values: dict[str, str]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                values.items(),
            )

    def fingerprints(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT path, fingerprint FROM documents").fetchall())

    def store_fingerprints(
        self, fingerprints: dict[str, str], previous: dict[str, str] | None = None
    ) -> None:
        """Record ``fingerprints``; with the ``previous`` ones (as read), write only the
        difference: a rebuild after one edit changes a few rows of 11,000."""
        with self._transaction():
            if previous is None:
                self._db.execute("DELETE FROM documents")
                changed = fingerprints
                gone: list[str] = []
            else:
                changed = {p: v for p, v in fingerprints.items() if previous.get(p) != v}
                gone = [p for p in previous if p not in fingerprints]
            self._db.executemany("DELETE FROM documents WHERE path = ?", ((p,) for p in gone))
            self._db.executemany(
                "INSERT OR REPLACE INTO documents (path, fingerprint) VALUES (?, ?)",
                changed.items(),
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


# Title, summary and author are bound as UTF-8 bytes and cast back to TEXT in SQL: bound
# as str, sqlite3 asks each for its UTF-8 form, which a non-ASCII str then keeps beside
# its own characters for as long as it lives (11 MB more in a cold build of 10,000
# statements, held by the catalog through the build and copied into every worker).
_TEXT = "CAST(? AS TEXT)"
_VALUES = ", ".join(["?"] * 5 + [_TEXT] + ["?"] * 5 + [_TEXT, _TEXT] + ["?"] * 2)


def _row(key: KeyText, s: Statement) -> tuple[Any, ...]:
    return (
        key, s.source, s.id, s.lang, s.translation_key, s.title.encode(),
        s.published.isoformat(), _zone_key(s.published), s.updated.isoformat(),
        _zone_key(s.updated), s.url, s.summary.encode(), s.author.encode(), int(s.draft),
        s.digest,
    )  # fmt: skip


def _zone_key(moment: datetime) -> str | None:
    return moment.tzinfo.key if isinstance(moment.tzinfo, ZoneInfo) else None


def _statement(row: tuple[Any, ...], zones: dict[str, tzinfo]) -> Statement:
    (_, source, id_, lang, translation_key, title, published, published_zone,
     updated, updated_zone, url, summary, author, draft, digest) = row  # fmt: skip
    # Positional (in field order): 10,000 of these per rebuild.
    return Statement(
        source,
        id_,
        lang,
        translation_key,
        title,
        _moment(published, published_zone, zones),
        _moment(updated, updated_zone, zones),
        url,
        summary,
        "",  # the body: never cached, bodies stay in the files
        author,
        bool(draft),
        digest,
    )


def _moment(text: str, zone_key: str | None, zones: dict[str, tzinfo]) -> datetime:
    moment = datetime.fromisoformat(text)
    if zone_key is None:
        return moment
    zone = zones.get(zone_key)
    if zone is None:
        zone = zones[zone_key] = ZoneInfo(zone_key)
    return moment.astimezone(zone)  # the same instant, in its zone again (fold included)
