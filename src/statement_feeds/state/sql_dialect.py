"""Where the two backends' SQL differs for many rows at once.

The shared SQL (``sql_*``) looks rows up by a list of keys and inserts batches of
rows. SQLite does both best with ``IN (?, ?, ...)`` and ``executemany``; on
PostgreSQL a placeholder per key makes each statement text new (psycopg parses
and converts every one afresh) and ``executemany`` costs a protocol round per row,
so there a list is one array parameter (``= ANY(?)``) and a batch is one
``INSERT ... SELECT FROM unnest(...)``: planning 1,000,000 subscribers
(``bench/plan_bench.py --pg``) spent most of its time in those two.

An array goes as one string the server splits (:func:`array_arg`) where its items allow:
psycopg dumps a list parameter item by item in Python.

PostgreSQL's dialect also counts the rows it inserts per table (``grown``): its store
gathers statistics for a table that grew by many rows as soon as they are committed
(``PostgresStore``), rather than leave its next reads to the planner's guesses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .sql_connection import Connection

__all__ = ["SQLITE", "Dialect", "PostgresDialect", "array_arg"]

Key = tuple[str, int]  # a delivery's: (email key, edition id)


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
    ) -> int:
        """Insert ``rows`` (``columns``: name and PostgreSQL type), then ``suffix``
        (e.g. ``ON CONFLICT (email) DO NOTHING``); how many rows were inserted."""
        if not rows:
            return 0
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) {suffix}"
        return int(db.executemany(sql, rows).rowcount)  # sqlite3 sums executemany's

    def update_deliveries(
        self, db: Connection, assignments: str, values: Sequence[Any], keys: Sequence[Key]
    ) -> None:
        """``UPDATE deliveries SET <assignments>`` (its ``?`` filled from ``values``) for
        each (email key, edition id) of ``keys``."""
        if keys:
            db.executemany(
                f"UPDATE deliveries SET {assignments} WHERE email_key = ? AND edition_id = ?",
                [(*values, *key) for key in keys],
            )


class PostgresDialect(Dialect):
    """PostgreSQL's forms; one per store, as it counts that store's inserts."""

    def __init__(self) -> None:
        self.grown: Counter[str] = Counter()  # rows inserted per table, until reset

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        array, value = array_arg(values, None)  # text keys mostly, ids sometimes
        return f"{column} = ANY({array})", [value]

    def insert_many(
        self,
        db: Connection,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        suffix: str = "",
    ) -> int:
        if not rows:
            return 0
        names = ", ".join(name for name, _ in columns)
        args = [
            array_arg(column, kind)
            for (_, kind), column in zip(columns, zip(*rows, strict=True), strict=True)
        ]
        arrays = ", ".join(array for array, _ in args)
        values = [value for _, value in args]
        sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {suffix}"
        inserted = int(db.execute(sql, values).rowcount)
        self.grown[table] += inserted
        return inserted

    def update_deliveries(
        self, db: Connection, assignments: str, values: Sequence[Any], keys: Sequence[Key]
    ) -> None:
        # One statement for a claim's 500 rows: executemany sent 500 (a sender's claims
        # took 49 us of its CPU per message, bench/scale_bench.py under py-spy).
        if keys:
            emails, email_values = array_arg([k for k, _ in keys], "text")
            editions, edition_values = array_arg([e for _, e in keys], "bigint")
            db.execute(
                f"UPDATE deliveries d SET {assignments}"
                f" FROM unnest({emails}, {editions}) AS v(k, e)"
                " WHERE d.email_key = v.k AND d.edition_id = v.e",
                [*values, email_values, edition_values],
            )


def array_arg(values: Sequence[Any], kind: str | None) -> tuple[str, Any]:
    """An array parameter of PostgreSQL type ``kind[]``: its SQL and its value.
    With ``kind`` None, a list of strings is ``text[]``, any other the type psycopg
    gives it.

    psycopg dumps a list item by item in Python (~0.45 us an item, and planning sends
    five arrays per subscriber); a string joined in one C call and split by the server
    costs a third of that. Text goes so when no item holds a line break (email and
    translation keys never do), integers always; anything else goes as a list in binary.
    """
    if values and kind in {"text", None}:
        try:
            joined = "\n".join(values)
        except TypeError:  # not all strings
            joined = None
        # A lone empty string would split into no items at all: it goes as a list.
        if joined and joined.count("\n") == len(values) - 1:
            return "string_to_array(?, E'\\n')", joined
    elif values and kind in {"int8", "bigint"}:
        try:  # int.__repr__: a bool as 1 or 0, anything else a TypeError
            return "string_to_array(?, ',')::int8[]", ",".join(map(int.__repr__, values))
        except TypeError:
            pass
    return ("?b" if kind is None else f"?b::{kind}[]"), list(values)


SQLITE = Dialect()
