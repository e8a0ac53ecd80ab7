"""Connections to the PostgreSQL state store (``[state] url``): the one place that makes
them, so that every connection has the same settings.

The password never comes from the configuration file: ``$STATEMENT_FEEDS_STATE_PASSWORD``
when set (read by :mod:`statement_feeds.environment`), otherwise libpq's own ways
(``PGPASSWORD``, ``~/.pgpass``, trust or peer authentication), which libpq applies itself.

TCP keepalives are on with short timers: the leader's advisory lock lives as long as its
session, so a host that vanishes without closing its socket must be noticed by the server
within about ``KEEPALIVE_LIMIT`` seconds for another daemon to take over.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .. import environment
from ..environment import Environ
from .postgres_errors import map_connect_errors

__all__ = [
    "KEEPALIVE_LIMIT",
    "ClosedConnection",
    "PgConnection",
    "analyze",
    "connect",
    "conninfo",
    "copy_rows",
]

_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
# idle + interval × count: when the server drops a session whose host went silent.
KEEPALIVE_LIMIT = 5 + 2 * 3
APPLICATION_NAME = "statement-feeds"


def conninfo(url: str, environ: Environ = None, **extra: Any) -> str:
    """The libpq connection string for ``url``, with our settings and the password."""
    options: dict[str, Any] = {
        "application_name": APPLICATION_NAME,
        "connect_timeout": 10,
        **_KEEPALIVE,
        **extra,
    }
    password = environment.state_password(environ)
    if password:
        options["password"] = password
    return make_conninfo(url, **options)


def connect(
    url: str, environ: Environ = None, *, autocommit: bool = False
) -> psycopg.Connection[Any]:
    """A new connection to the state database (StateError when it cannot be made)."""
    with map_connect_errors(url):
        return psycopg.connect(conninfo(url, environ), autocommit=autocommit)


def analyze(conn: psycopg.Connection[Any], tables: Sequence[str], wait: float) -> None:
    """Gather the planner's statistics of ``tables`` now, in a transaction of its own
    that waits at most ``wait`` seconds for a table another session holds (a VACUUM):
    for rows just committed by the million, which autovacuum reaches only after its next
    nap. Raises psycopg's error; the callers' data is committed, so they report it."""
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = {int(wait * 1000)}")
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))


def copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Sequence[Any]
) -> None:
    """``COPY table (columns) FROM STDIN`` of ``rows``: several times faster than an
    INSERT per row (planning 1,000,000 deliveries, bench/plan_bench.py).

    Each row must be a tuple of ``str``, ``int`` and None (an edition's rows are;
    checked on the first row, as ``%`` would write anything else as its ``str``). Runs
    of rows are formatted as COPY's text by ``%`` and a join, half the CPU of psycopg's
    ``write_row``, which a run falls back to if a field needs COPY's escapes or is NULL.
    """
    if rows and not (
        type(rows[0]) is tuple and all(f is None or type(f) in _PLAIN for f in rows[0])
    ):
        raise TypeError(f"copy_rows takes tuples of str, int and None, not {rows[0]!r}")
    line = "\t".join(["%s"] * len(columns)) + "\n"
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for start in range(0, len(rows), _RUN):
            run = rows[start : start + _RUN]
            text = _copy_text(line, run)
            if text is not None:
                copy.write(text)
            else:
                for row in run:
                    copy.write_row(row)


_PLAIN = (str, int)
_RUN = 500  # rows formatted at once: a few dozen KiB per write


def _copy_text(line: str, rows: Sequence[Any]) -> str | None:
    """``rows`` as COPY text, or None if one needs escaping or holds a NULL. A field
    with a tab, a line break or a backslash shows in the counts of the whole text."""
    text = "".join([line % row for row in rows])
    # A NULL reads "None": look for it per row only when the text has one at all.
    if "None" in text and any(None in row for row in rows):
        return None
    tabs = line.count("\t") * len(rows)
    if text.count("\t") != tabs or text.count("\n") != len(rows):
        return None
    if "\\" in text or "\r" in text:
        return None
    return text


@lru_cache(maxsize=512)
def _adapt(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled); ``?b``
    (only ``sql_dialect``'s PostgreSQL forms write it) is ``%b``, a parameter sent in
    binary: a key list dumps ~3× as fast as in text."""
    return sql.replace("%", "%%").replace("?b", "%b").replace("?", "%s")


class PgConnection:
    """A psycopg connection as ``sql_connection.Connection``: ``?`` placeholders."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        return self.raw.execute(_adapt(sql), tuple(parameters))

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        cursor.executemany(_adapt(sql), [tuple(row) for row in parameters])
        return cursor


class ClosedConnection(PgConnection):
    """A closed store's connection: its pooled one may serve another store by now."""

    def __init__(self) -> None:
        pass

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        raise psycopg.InterfaceError("the state store is closed")

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Any]:
        raise psycopg.InterfaceError("the state store is closed")
