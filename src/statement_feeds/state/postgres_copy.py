"""`state copy --to postgresql://…`: move a SQLite state into an empty PostgreSQL database.

All or nothing: every table of :mod:`copy_tables` goes over in ONE transaction with
``COPY … FROM STDIN``; each table's row count in the target is checked against the
source's before the commit; the sequences are set past the copied ids. A failure
anywhere (a value that does not convert, a constraint, a lost connection) rolls the
whole transaction back: the target stays as empty as it was.

Refused before anything is written: a password in the URL (it would end up in shell
history and process lists: use ``$STATEMENT_FEEDS_STATE_PASSWORD``), a daemon running on
the SQLite state (its writes would be lost), and a target whose data tables hold rows
(this is a move into a new database, never a merge). While copying, the daemon and sender
locks of the state folder are held, so no daemon or `digest send` starts meanwhile, and
the target's tables are locked against writers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql

from ..environment import STATE_PASSWORD_ENV, Environ
from ..errors import LockHeldError, StateError
from .copy_tables import REPLACED, SKIPPED, TABLES, Table, convert_rows
from .lock import SENDER_LOCK, StateLock
from .postgres_connection import analyze, connect
from .postgres_errors import describe_url, map_postgres_errors
from .postgres_migrations import migrate
from .sqlite import DB_NAME
from .sqlite_export import SqliteSnapshot

__all__ = ["MIGRATE", "CopyReport", "check_target_url", "copy_state"]

PgConnection = psycopg.Connection[Any]
ANALYSE_WAIT = 10.0  # seconds the statistics wait for a table another session holds


@dataclass
class CopyReport:
    target: str  # host:port/database, never a password
    rows: dict[str, int] = field(default_factory=dict)  # table → rows copied, in copy order
    table_seconds: dict[str, float] = field(default_factory=dict)  # table → its COPY + count
    seconds: float = 0.0  # the whole transaction, commit included
    # After the commit: the copied tables' statistics (see _analyse); why not, if not.
    analyse_seconds: float = 0.0
    analyse_error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def check_target_url(url: str) -> None:
    """StateError unless ``url`` is a PostgreSQL URL without a password (never echoed)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres") or not rest:
        raise StateError(
            "--to must be a PostgreSQL URL such as postgresql://user@host:5432/database"
        )
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when it is read)
    except ValueError:
        raise StateError(f"--to has a port that is not a number: {parts.hostname}") from None
    in_query = any(name == "password" for name, _ in parse_qsl(parts.query))
    if parts.password is not None or in_query:
        raise StateError(
            "--to holds a password, which would be kept in shell history and shown in "
            f"process lists: remove it from the URL and set ${STATE_PASSWORD_ENV} "
            "(or PGPASSWORD, or ~/.pgpass) instead"
        )


def copy_state(state_dir: Path, url: str, environ: Environ = None) -> CopyReport:
    """Copy the SQLite state in ``state_dir`` into the empty database at ``url``."""
    check_target_url(url)
    if not (state_dir / DB_NAME).is_file():  # before the locks, which would make the folder
        raise StateError(f"there is no SQLite state at {state_dir / DB_NAME}: nothing to copy")
    with _state_locked(state_dir), SqliteSnapshot(state_dir / DB_NAME) as source:
        unknown = sorted(source.tables - {t.name for t in (*TABLES, *REPLACED)} - SKIPPED)
        if unknown:  # a table this code would silently leave behind
            raise StateError(
                f"{source.path} has tables this statement-feeds cannot copy: "
                f"{', '.join(unknown)}; was it made by a newer version?"
            )
        conn = connect(url, environ, autocommit=True)
        try:
            with map_postgres_errors("prepare the schema of the target"):
                MIGRATE(conn, url)
            report = _copy(source, conn, describe_url(url))
            _analyse(conn, report)
            return report
        finally:
            conn.close()


class _state_locked:  # used as a context manager, named like one
    """The daemon and sender locks of the state folder, or a StateError saying who runs."""

    def __init__(self, state_dir: Path) -> None:
        self._locks = [StateLock(state_dir), StateLock(state_dir, SENDER_LOCK)]

    def __enter__(self) -> None:
        try:
            for lock in self._locks:
                lock.acquire()
        except LockHeldError as exc:
            self.__exit__()
            who = f"process {exc.pid}" if exc.pid else "another process"
            raise StateError(
                f"{who} is using the state in {Path(exc.lock_path).parent} (a running "
                "daemon or `digest send`): stop it first, so that nothing changes the "
                "state while it is copied"
            ) from exc

    def __exit__(self, *exc: object) -> None:
        for lock in reversed(self._locks):
            lock.release()


def _copy(source: SqliteSnapshot, conn: PgConnection, target: str) -> CopyReport:
    report = CopyReport(target)
    started = time.monotonic()
    with map_postgres_errors("copy the state"), conn.transaction():
        cur = conn.cursor()
        cur.execute("SET LOCAL lock_timeout = '10s'")
        # No writer may add rows between the emptiness check and the commit.
        names = sql.SQL(", ").join(sql.Identifier(t.name) for t in (*TABLES, *REPLACED))
        cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(names))
        _refuse_non_empty(cur, target)
        as_text = _text_timestamps(cur)
        for table in REPLACED:
            keys = [row[: len(table.key)] for batch in source.batches(table) for row in batch]
            _delete_keys(cur, table, keys)
            _timed(report, table, partial(_copy_table, cur, source, table, as_text))
        for table in TABLES:
            _timed(report, table, partial(_copy_table, cur, source, table, as_text))
        for table in TABLES:
            if table.serial:
                _set_sequence(cur, table, table.serial)
    report.seconds = time.monotonic() - started
    return report


def _analyse(conn: PgConnection, report: CopyReport) -> None:
    """Gather the statistics of every table the copy filled, once it is committed.

    Autovacuum gets to them only after its next nap; meanwhile the planner guesses, and
    on a table of millions of rows it may read the whole table where an index would do
    (as ``PostgresStore._analyze_grown`` found after a big plan). It waits at most
    ``ANALYSE_WAIT`` for a table's lock; a failure is reported, not raised: the copy is committed.
    """
    filled = [name for name, rows in report.rows.items() if rows]
    if not filled:
        return
    started = time.monotonic()
    try:
        analyze(conn, filled, ANALYSE_WAIT)
    except psycopg.Error as exc:
        report.analyse_error = str(exc).strip()
    report.analyse_seconds = time.monotonic() - started


def _timed(report: CopyReport, table: Table, copy: Callable[[], int]) -> None:
    started = time.monotonic()
    report.rows[table.name] = copy()
    report.table_seconds[table.name] = time.monotonic() - started


def _refuse_non_empty(cur: psycopg.Cursor[Any], target: str) -> None:
    full = []
    for table in TABLES:
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table.name)))
        row = cur.fetchone()
        if row is not None and row[0]:
            full.append(table.name)
    if full:
        raise StateError(
            f"the target database {target} is not empty (rows in {', '.join(full)}): "
            "state copy fills a new, empty database only, it never merges; create an "
            "empty database (createdb) and copy into that"
        )


def _delete_keys(cur: psycopg.Cursor[Any], table: Table, keys: list[tuple[Any, ...]]) -> None:
    """Remove the target's own rows that the source's rows replace (same key)."""
    match = sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(name)) for name in table.key
    )
    query = sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(table.name), match)
    if keys:
        cur.executemany(query, keys)


def _text_timestamps(cur: psycopg.Cursor[Any]) -> dict[str, frozenset[str]]:
    """table → its timestamp columns that the target keeps as text (the rest: timestamptz).

    The copy follows the target's schema: the PostgreSQL store may keep SQLite's fixed-width
    text (compared as text) or use ``timestamptz``; any other type is refused.
    """
    cur.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    )
    types = {(str(t), str(c)): str(d) for t, c, d in cur.fetchall()}
    found: dict[str, frozenset[str]] = {}
    for table in (*TABLES, *REPLACED):
        text = set()
        for column in sorted(table.timestamps):
            kind = types.get((table.name, column), "missing")
            if kind in ("text", "character varying"):
                text.add(column)
            elif kind != "timestamp with time zone":
                raise StateError(
                    f"the target's column {table.name}.{column} is {kind}: state copy "
                    "writes timestamps into timestamptz or text columns only"
                )
        found[table.name] = frozenset(text)
    return found


def _copy_table(
    cur: psycopg.Cursor[Any],
    source: SqliteSnapshot,
    table: Table,
    as_text: dict[str, frozenset[str]],
) -> int:
    expected = source.count(table)
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in table.names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table.name), columns)
    written = 0
    with cur.copy(statement) as copy:
        for batch in source.batches(table):
            for row in convert_rows(table, batch, as_text[table.name]):
                copy.write_row(row)
            written += len(batch)
    stored = _target_count(cur, table, source)
    if not expected == written == stored:
        raise StateError(
            f"table {table.name}: the source has {expected} rows, {written} were sent and "
            f"the target has {stored}; nothing was copied"
        )
    return written


def _target_count(cur: psycopg.Cursor[Any], table: Table, source: SqliteSnapshot) -> int:
    """Rows of ``table`` in the target (for REPLACED: those with the source's keys)."""
    if table in REPLACED:
        keys = [row[0] for batch in source.batches(table) for row in batch]
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} = ANY(%s)").format(
            sql.Identifier(table.name), sql.Identifier(table.key[0])
        )
        cur.execute(query, (keys,))
    else:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name)))
    row = cur.fetchone()
    return int(row[0]) if row is not None else 0


def _set_sequence(cur: psycopg.Cursor[Any], table: Table, column: str) -> None:
    """The next id the target hands out follows the highest copied one."""
    cur.execute("SELECT pg_get_serial_sequence(%s, %s)", (table.name, column))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return  # the target's schema fills this column without a sequence
    query = sql.SQL("SELECT setval(%s, COALESCE(max({c}), 1), max({c}) IS NOT NULL) FROM {t}")
    cur.execute(query.format(c=sql.Identifier(column), t=sql.Identifier(table.name)), (row[0],))


# The target's schema: the PostgreSQL store's own migrations (conn in autocommit, url).
MIGRATE: Callable[[PgConnection, str], object] = migrate
