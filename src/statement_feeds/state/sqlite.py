"""The state store in SQLite (WAL) at ``<paths.state>/state.sqlite``: ``SqliteStore``.

It implements every protocol of ``state.api`` (``Store``) with one connection. The
SQL is shared with ``postgres.PostgresStore``, split by concern into mixins:
``sql_deliveries`` (the delivery state machine), ``sql_editions`` (planning editions),
``sql_subscribers`` (what the state knows about addresses) and ``sql_web`` (sign-ups,
preferences, rate limits, subscriber ids). This module keeps what is SQLite's own:
opening the file, PRAGMAs, ``BEGIN IMMEDIATE`` transactions, its migrations and the
``secret.key`` file next to the database; ``state.open`` picks a backend.

Timestamps are fixed-width ISO 8601 UTC text (so text order is time order).

Durability: WAL with ``synchronous=NORMAL`` survives kill -9 of the process (the
guarantee DESIGN.md makes); only an OS crash or power cut can lose the last commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from ..errors import StateError
from .api import EditionStatus, SubscriberState
from .batches import CHUNK, chunks
from .secrets import load_keys
from .sql_bounces import BounceTables
from .sql_deliveries import DeliveryStateMachine
from .sql_editions import EditionTables
from .sql_parts import CLAIM_LEASE
from .sql_subscriber_ids import load_id_key
from .sql_subscribers import SubscriberTables
from .sql_web import WebTables
from .sqlite_errors import map_sqlite_errors, translated
from .sqlite_migrations import migrate
from .timestamps import from_ts, to_ts

# EditionStatus, SubscriberState, chunks, from_ts and to_ts: still importable from here.
__all__ = [
    "CHUNK",
    "DB_NAME",
    "EditionStatus",
    "SqliteStore",
    "SubscriberState",
    "chunks",
    "from_ts",
    "to_ts",
]

DB_NAME = "state.sqlite"


@translated
class SqliteStore(DeliveryStateMachine, EditionTables, SubscriberTables, WebTables, BounceTables):
    """The SQLite implementation of :class:`statement_feeds.state.api.Store`.

    One connection, used from one thread. Transactions are explicit
    (``BEGIN IMMEDIATE``) and nest: methods called inside ``plan_edition``'s
    transaction (by the deliveries generator) join it instead of committing early.
    """

    _db: sqlite3.Connection
    shared = False  # one sender per state folder (the daemon's lock)

    def __init__(
        self, path: Path, *, busy_timeout: float = 60.0, lease: timedelta = CLAIM_LEASE
    ) -> None:
        self.path = path
        self.lease = lease
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            self._configure()
            migrate(self._db)
            self._id_key = load_id_key(self._db)
        except (OSError, sqlite3.Error, ValueError) as exc:
            raise StateError(f"cannot open the state database {path}: {exc}") from exc
        self._depth = 0
        self._ids_json: dict[tuple[str, ...], str] = {}
        self._seen_tables = 0
        self._new_claimant()

    @classmethod
    def open(cls, state_dir: Path, *, lease: timedelta = CLAIM_LEASE) -> SqliteStore:
        return cls(state_dir / DB_NAME, lease=lease)

    def signing_keys(self) -> list[bytes]:
        """``$STATEMENT_FEEDS_SECRET_KEY``, else ``secret.key`` next to the database."""
        return load_keys(self.path.parent)

    def _map_errors(self, what: str) -> AbstractContextManager[None]:
        return map_sqlite_errors(what)

    def _drop_temp(self, table: str) -> None:
        # IF EXISTS: a rolled-back transaction already took the table with it.
        # A reader abandoned until after close() finds the table gone with it.
        with suppress(sqlite3.ProgrammingError):
            self._db.execute(f"DROP TABLE IF EXISTS {table}")

    def _configure(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StateError(f"{self.path}: cannot switch to WAL mode (got {mode})")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA cache_size=-32768")  # 32 MiB: bounded, counts towards RSS
        # Temporary tables (the addresses seen while reading the lists) and big sorts
        # go to a temporary file, not to memory: peak RSS must not grow with the list.
        self._db.execute("PRAGMA temp_store=FILE")

    def loop_writer(self) -> None:
        return None  # record in the loop: a commit is tens of microseconds

    def claimer(self) -> None:
        return None  # claim in the loop: one sender per state, a claim is milliseconds

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested uses join the outermost one."""
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        with map_sqlite_errors("write"):
            self._db.execute("BEGIN IMMEDIATE")  # take the write lock now, not mid-way
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._depth = 0
                if self._db.in_transaction:  # a failed statement may have ended it already
                    self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._db.execute("COMMIT")
