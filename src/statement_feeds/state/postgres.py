"""The state store on PostgreSQL (``[state] url``): ``PostgresStore``, for several daemons
sharing one database.

The SQL is the SQLite store's (the ``sql_*`` mixins, ``?`` placeholders adapted to
psycopg's ``%s`` once per statement text); what is PostgreSQL's own lives here:

* connections come from a ``psycopg_pool.ConnectionPool`` per URL and process (at most
  ``POOL_SIZE``), each made by ``postgres_connection.conninfo`` (keepalives, password).
  A store borrows one connection for its life, used from one thread like SQLite's,
  and gives it back with ``DISCARD TEMP`` (its ``seen_addresses`` tables go with it);
* explicit transactions (``BEGIN`` ... ``COMMIT`` on an autocommit connection) that
  nest as ``SqliteStore.transaction`` does; READ COMMITTED, with row locks where
  senders meet: ``claim`` takes rows ``FOR UPDATE OF d SKIP LOCKED``, so two senders
  never wait for each other nor share a delivery, and takes over a dead sender's
  ``sending`` rows once their lease lapsed (``shared``: live senders renew theirs);
* ``record`` and ``unsubscribe`` are retried a few times on a deadlock or a
  serialization failure (SQLSTATE 40P01, 40001), which roll the whole transaction back;
* signing keys live in the ``secrets`` table, made once by whichever host asks
  first, so a token made on one host verifies on all (``$STATEMENT_FEEDS_SECRET_KEY``
  still wins when set);
* errors pass ``postgres_errors`` (the one translation point for psycopg).

Confirmations (``record``) commit with ``synchronous_commit = off``: the commit returns
before its WAL reaches the disk. A crash of the daemon loses nothing (the server has
the commit); only a crash of the database server itself can lose the confirmations of
its last ~3 × ``wal_writer_delay`` (600 ms by default), and those messages then go out
again with the same Message-ID, as after a kill -9 of a sender. It saves an fsync per
turn of the sender (``bench/pg_record_commit.py`` measures it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from ..domain.subscribers import email_key
from ..environment import Environ
from ..errors import StateError, StoreError
from .api import Delivery, Outcome
from .postgres_connection import (
    ClosedConnection,
    PgConnection,
    analyze,
    connect,
    conninfo,
    copy_rows,
)
from .postgres_errors import (
    RETRIES,
    describe_url,
    is_conflict,
    map_connect_errors,
    map_postgres_errors,
)
from .postgres_histories import PostgresHistories
from .postgres_migrations import migrate
from .postgres_plan import EditionWriter, PostgresPlanning
from .postgres_writer import SENT_AND_STARTED, LoopWriter
from .secrets import configured_keys, new_key
from .sql_bounces import BounceTables
from .sql_connection import translate_methods
from .sql_deliveries import DeliveryStateMachine
from .sql_dialect import PostgresDialect
from .sql_parts import CLAIM_LEASE
from .sql_subscriber_ids import load_id_key
from .sql_subscribers import SubscriberTables
from .sql_web import WebTables
from .timestamps import to_ts

__all__ = ["POOL_SIZE", "PgConnection", "PostgresStore", "close_pools"]

POOL_SIZE = 8  # connections per URL and process: one per open store
POOL_WAIT = 30.0  # seconds to wait for a free connection before giving up
ANALYZE_AFTER = 10_000  # rows a transaction adds to a table before it is analysed at once
ANALYZE_WAIT = 5.0  # seconds it waits for a table another session vacuums (then skips it)
_POOLS: dict[tuple[int, str], ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()
R = TypeVar("R")
log = logging.getLogger(__name__)


def _pool(url: str, environ: Environ) -> ConnectionPool:
    info = conninfo(url, environ)
    key = (os.getpid(), info)  # a forked child makes its own: sockets are not shared
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = ConnectionPool(
                info,
                min_size=1,
                max_size=POOL_SIZE,
                kwargs={"autocommit": True},
                # A connection the server dropped while it sat in the pool (a restart,
                # a failover) is replaced on the way out, not handed to a store.
                check=ConnectionPool.check_connection,
                name="statement-feeds-state",
                open=True,
            )
            _POOLS[key] = pool
    return pool


def close_pools() -> None:
    """Close every pool of this process (tests dropping their database, shutdown)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


class PostgresStore(
    DeliveryStateMachine, PostgresPlanning, PostgresHistories, WebTables, BounceTables
):
    """The PostgreSQL implementation of :class:`statement_feeds.state.api.Store`."""

    _db: PgConnection
    shared = True
    _temp_schema = "pg_temp"
    _table_options = ""
    _claim_lock = " FOR UPDATE OF d SKIP LOCKED"
    _dialect: PostgresDialect
    _row_lock = " FOR UPDATE"
    # synchronous_commit of ``record``'s transactions ("on": wait for the WAL flush;
    # bench/pg_record_commit.py compares the two).
    confirm_commit = "off"

    def __init__(
        self,
        url: str,
        *,
        lease: timedelta = CLAIM_LEASE,
        environ: Environ = None,
        migrated: bool = False,
    ):
        self.url = url
        self.lease = lease
        self._environ = environ
        self._dialect = PostgresDialect()  # counts the rows inserted (_analyze_grown)
        # Migrations on a connection of their own: a refused connection or a newer
        # schema is a StateError naming the server, before any pool is made. Skipped
        # (``migrated``) for a store opened beside one that did it (``claimer``).
        if not migrated:
            with connect(url, environ, autocommit=True) as conn, map_postgres_errors("migrate"):
                migrate(conn, url)
        self._pool = _pool(url, environ)
        with map_connect_errors(url):
            raw = self._pool.getconn(timeout=POOL_WAIT)
        self._raw: psycopg.Connection[Any] | None = raw
        self._db = PgConnection(raw)
        self._depth = 0
        self._ids_json: dict[tuple[str, ...], str] = {}
        self._seen_tables = 0
        self._generic = False  # plan_cache_mode forced on this connection (record)
        try:
            with map_postgres_errors("open the state"):
                self._id_key = load_id_key(self._db)
        except ValueError as exc:  # a damaged settings row
            self.close()
            raise StateError(f"cannot open the state database {describe_url(url)}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        self._new_claimant()

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        self._db = ClosedConnection()
        try:
            if raw.info.transaction_status != TransactionStatus.IDLE:
                raw.execute("ROLLBACK")
            raw.execute("DISCARD TEMP")  # the next borrower starts with no TEMP tables
            if self._generic:
                raw.execute("RESET plan_cache_mode")
        except psycopg.Error:
            pass  # a broken connection: the pool sees it and drops it
        self._pool.putconn(raw)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """One transaction; nested uses join the outermost one."""
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        with map_postgres_errors("write"):
            self._db.execute("BEGIN")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._depth = 0
                self._dialect.grown.clear()
                with suppress(psycopg.Error):  # a dead connection: nothing to undo
                    self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._db.execute("COMMIT")
        self._analyze_grown()

    def _analyze_grown(self) -> None:
        """Gather the statistics of every table the transaction just committed grew by
        ``ANALYZE_AFTER`` rows or more (an edition, a big list's first sync).

        Autovacuum would, after its next nap, but the next plan reads those rows by key
        at once: with no statistics for 28 million ``assigned`` rows, the planner read
        the whole table (in parallel) for every 5,000 addresses, and the second edition
        of ``bench/plan_bench.py --pg --one 1000000 --steady 3`` ran for minutes.
        ANALYZE reads a fixed sample (30,000 rows), whatever the table's size.
        """
        grown = Counter(self._dialect.grown)
        self._dialect.grown.clear()
        self._analyze(self._db.raw, grown)

    def _analyze(self, conn: psycopg.Connection[Any], grown: Counter[str]) -> None:
        """ANALYZE the tables of ``grown`` (rows inserted) that grew enough, on ``conn``
        after its commit. It waits at most ``ANALYZE_WAIT`` for a table another session
        vacuums or analyses (then that one's statistics will do). A failure only costs
        the planner's guesses: the rows are committed, so it is logged, not raised."""
        tables = sorted(
            table
            for table, rows in grown.items()
            if rows >= ANALYZE_AFTER and not table.startswith(self._temp_schema)
        )
        if not tables:
            return
        try:
            analyze(conn, tables, ANALYZE_WAIT)
        except psycopg.Error as exc:
            log.warning("cannot gather the statistics of %s: %s", ", ".join(tables), exc)

    def _edition_writer(self) -> EditionWriter:
        """A connection of its own for the edition's rows (postgres_plan)."""
        conn = connect(self.url, self._environ, autocommit=True)
        try:
            return EditionWriter(conn, self._analyze)
        except BaseException:
            conn.close()
            raise

    def _map_errors(self, what: str) -> AbstractContextManager[None]:
        return map_postgres_errors(what)

    def _drop_temp(self, table: str) -> None:
        # In a transaction that failed, the DROP fails too: the rollback that follows
        # takes a table made inside it, and close() discards the others.
        with suppress(psycopg.Error):
            self._db.execute(f"DROP TABLE IF EXISTS {table}")

    def _retrying(self, attempt: Callable[[], R]) -> R:
        """Run ``attempt`` (one whole transaction) again after a deadlock or
        serialization failure; inside an outer transaction there is nothing to retry."""
        for tries in range(1, RETRIES + 1):
            try:
                return attempt()
            except StoreError as exc:
                if self._depth or tries == RETRIES or not is_conflict(exc):
                    raise
            time.sleep(0.02 * tries)  # let the other transaction finish
        raise AssertionError("unreachable")

    def record(
        self, outcomes: Sequence[Outcome], start: Sequence[Delivery], now: datetime
    ) -> list[bool]:
        """As ``sql_deliveries``, committed without waiting for the WAL flush (see the
        module docstring for the window this opens) and retried on a deadlock.

        The sender's usual turn (messages sent, others handed over) is one statement
        (``postgres_writer.SENT_AND_STARTED``): a round trip and a parse instead of five or more.
        """
        stamp = to_ts(now)
        keys = [(email_key(d.email), d.edition_id) for d in start]
        if not self._depth and all(o.state == "sent" for o in outcomes):
            sent = [(email_key(o.delivery.email), o.delivery.edition_id) for o in outcomes]
            if not set(sent) & set(keys):
                started = self._retrying(lambda: self._sent_and_started(sent, keys, stamp))
                return self._cancel_refused(keys, [key in started for key in keys], stamp)
        cursors = self._retrying(lambda: self._confirm(outcomes, keys, stamp, now))
        return self._cancel_refused(keys, [cursor.rowcount > 0 for cursor in cursors], stamp)

    def loop_writer(self) -> LoopWriter:
        """``record`` for a sender's event loop, on a connection of its own (its
        module says why); closed by the caller."""
        conn = connect(self.url, self._environ, autocommit=True)
        try:
            return LoopWriter(
                conn,
                claimant=self.claimant,
                commit=self.confirm_commit,
                fallback=self.record,
                cancel=self._cancel_refused,
            )
        except BaseException:
            conn.close()
            raise

    def claimer(self) -> PostgresStore:
        """A store of its own (another pooled connection) claiming as this sender: a
        claim of 500 is ~25 ms that the sender's loop would otherwise stand still for.
        Closed by the caller."""
        other = PostgresStore(self.url, lease=self.lease, environ=self._environ, migrated=True)
        other.claimant = self.claimant
        return other

    def _sent_and_started(
        self, sent: list[tuple[str, int]], keys: list[tuple[str, int]], stamp: str
    ) -> set[tuple[str, int]]:
        with map_postgres_errors("write"):
            if not self._generic:
                # A sender's connection runs the same few statements thousands of times:
                # plan them once. PostgreSQL keeps re-planning this one (its generic
                # plan, costed for ten keys, looks dearer than a custom one for four),
                # and planning was 0.3 of its 0.5 ms of server CPU; forced generic: 0.21
                # ms (the plan stays on the primary key: see above). Undone in close().
                self._db.raw.execute("SET plan_cache_mode = force_generic_plan")
                self._generic = True
            rows = self._db.raw.execute(
                SENT_AND_STARTED,
                {
                    "commit": self.confirm_commit,
                    "stamp": stamp,
                    "me": self.claimant,
                    "sent_keys": [k for k, _ in sent],
                    "sent_editions": [e for _, e in sent],
                    "start_keys": [k for k, _ in keys],
                    "start_editions": [e for _, e in keys],
                },
            ).fetchall()
        return {(str(k), int(e)) for k, e in rows}

    def _insert_rows(
        self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        copy_rows(self._db.raw, table, columns, rows)
        self._dialect.grown[table] += len(rows)

    @contextmanager
    def _confirming(self) -> Iterator[PgConnection]:
        with self.transaction() as db:
            if self._depth == 1:  # a transaction of its own: its commit may be asynchronous
                db.execute(f"SET LOCAL synchronous_commit = {self.confirm_commit}")
            yield db

    def unsubscribe(self, email: str, at: datetime) -> bool:
        return self._retrying(lambda: SubscriberTables.unsubscribe(self, email, at))

    def signing_keys(self) -> list[bytes]:
        """``$STATEMENT_FEEDS_SECRET_KEY`` when set; else the ``secrets`` table's key,
        made by the first host that asks (every host then signs and verifies alike)."""
        configured = configured_keys()
        if configured is not None:
            return configured
        with self.transaction() as db:
            db.execute(
                "INSERT INTO secrets (name, value, created_at) VALUES ('signing_key', ?, now())"
                " ON CONFLICT (name) DO NOTHING",
                (new_key(),),
            )
            row = db.execute("SELECT value FROM secrets WHERE name = 'signing_key'").fetchone()
        if row is None:  # never: inserted just above, and never deleted
            raise StoreError("the signing key is missing from the secrets table")
        return [bytes(row[0])]


translate_methods(PostgresStore, map_postgres_errors)
