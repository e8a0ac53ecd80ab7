"""Where the two backends' SQL differs for many rows at once.

The shared SQL (``sql_*``) looks rows up by a list of keys and inserts batches of
rows. SQLite does both best with ``IN (?, ?, ...)`` and ``executemany``; on
PostgreSQL a placeholder per key makes each statement text new (psycopg parses
and converts every one afresh) and ``executemany`` costs a protocol round per row,
so there a list is one array parameter (``= ANY(?)``) and a batch is one
``INSERT ... SELECT FROM unnest(...)``: planning 1,000,000 subscribers
(``bench/plan_bench.py --pg``) spent most of its time in those two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sql_connection import Connection

__all__ = ["POSTGRES", "SQLITE", "Dialect"]


class Dialect:
    """SQLite's forms (the default)."""

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the SQL and its parameters."""
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def insert_many(
        self,
        db: Connection,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        suffix: str = "",
    ) -> None:
        """Insert ``rows`` (``columns``: name and PostgreSQL type), then ``suffix``
        (e.g. ``ON CONFLICT (email) DO NOTHING``)."""
        if not rows:
            return
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" * len(columns))
        db.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {suffix}", rows)


class PostgresDialect(Dialect):
    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?b)", [list(values)]

    def insert_many(
        self,
        db: Connection,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        suffix: str = "",
    ) -> None:
        if not rows:
            return
        names = ", ".join(name for name, _ in columns)
        arrays = ", ".join(f"?b::{kind}[]" for _, kind in columns)
        values = [list(column) for column in zip(*rows, strict=True)]
        db.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {suffix}", values)


SQLITE = Dialect()
POSTGRES = PostgresDialect()
