"""Reading a whole SQLite state for `state copy`: one consistent snapshot of every table.

The snapshot is one read transaction, so counts and rows agree even if something writes
meanwhile (the copy also holds the daemon and sender locks, so nothing should). The
database is first brought to this code's schema (the copy's column lists are the
current ones); a database from a newer statement-feeds is refused, as everywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import StateError
from .copy_tables import Table
from .sqlite_errors import map_sqlite_errors
from .sqlite_migrations import migrate

__all__ = ["SqliteSnapshot"]

BATCH = 5000


class SqliteSnapshot:
    """``with SqliteSnapshot(path) as source:`` — tables, counts and rows of one moment."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise StateError(f"there is no SQLite state at {path}: nothing to copy")
        self.path = path
        with map_sqlite_errors("open the state to copy it"):
            # mode=rw: never create an empty database where the state was expected.
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None
            )
            try:
                self._db.execute("PRAGMA busy_timeout = 10000")
                migrate(self._db)
                self._db.execute("BEGIN")  # deferred: the first read fixes the snapshot
                self._tables = self._table_names()
            except BaseException:
                self._db.close()
                raise

    def _table_names(self) -> frozenset[str]:
        rows = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return frozenset(name for (name,) in rows)

    @property
    def tables(self) -> frozenset[str]:
        return self._tables

    def columns(self, name: str) -> tuple[str, ...]:
        with map_sqlite_errors(f"read the columns of {name}"):
            return tuple(row[1] for row in self._db.execute(f'PRAGMA table_info("{name}")'))

    def count(self, table: Table) -> int:
        with map_sqlite_errors(f"count the rows of {table.name}"):
            return int(self._db.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0])

    def batches(self, table: Table, size: int = BATCH) -> Iterator[list[tuple[Any, ...]]]:
        """Every row of ``table`` (its columns in the table's order), in key order."""
        columns = ", ".join(f'"{name}"' for name in table.names)
        order = ", ".join(f'"{name}"' for name in table.key)
        with map_sqlite_errors(f"read {table.name}"):
            cursor = self._db.execute(f'SELECT {columns} FROM "{table.name}" ORDER BY {order}')
            while batch := cursor.fetchmany(size):
                yield batch

    def close(self) -> None:
        self._db.close()  # ends the read transaction

    def __enter__(self) -> SqliteSnapshot:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
