"""Build cache in the state folder: parsed statements, file hints, document fingerprints.

Keyed by file content (not mtime), so a rebuild after one edit parses and renders
only what changed. It is only a cache: if it is missing or damaged it is
recreated and the build does the full work again.
"""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from ..core.statements import Statement

__all__ = ["BuildCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parsed (key TEXT PRIMARY KEY, statement BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS documents (path TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY, signature TEXT NOT NULL, key TEXT NOT NULL
);
"""
_VERSION = 4  # bump to discard caches written by an older format


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
        db.execute("PRAGMA synchronous=NORMAL")
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

    def parsed(self) -> dict[str, Statement]:
        rows = self._db.execute("SELECT key, statement FROM parsed").fetchall()
        found: dict[str, Statement] = {}
        for key, blob in rows:
            with contextlib.suppress(Exception):  # an unreadable row is just a miss
                found[key] = pickle.loads(blob)
        return found

    def store_parsed(self, items: Iterable[tuple[str, Statement | bytes]], keep: set[str]) -> None:
        """Add new rows and drop those no longer used (``keep``), in one transaction.

        A statement may come already pickled (``bytes``, as parse workers send it).
        """
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO parsed (key, statement) VALUES (?, ?)",
                ((key, _pickled(s)) for key, s in items),
            )
            stale = [(k,) for (k,) in self._db.execute("SELECT key FROM parsed") if k not in keep]
            self._db.executemany("DELETE FROM parsed WHERE key = ?", stale)

    def file_hints(self) -> dict[str, tuple[str, str]]:
        """source → (signature, parse key) recorded by the last build."""
        rows = self._db.execute("SELECT source, signature, key FROM files").fetchall()
        return {source: (signature, key) for source, signature, key in rows}

    def store_file_hints(self, hints: dict[str, tuple[str, str]]) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM files")
            self._db.executemany(
                "INSERT INTO files (source, signature, key) VALUES (?, ?, ?)",
                ((source, sig, key) for source, (sig, key) in hints.items()),
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

    def store_fingerprints(self, fingerprints: dict[str, str]) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM documents")
            self._db.executemany(
                "INSERT INTO documents (path, fingerprint) VALUES (?, ?)", fingerprints.items()
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


def _pickled(statement: Statement | bytes) -> bytes:
    if isinstance(statement, bytes):
        return statement
    return pickle.dumps(statement, protocol=pickle.HIGHEST_PROTOCOL)
