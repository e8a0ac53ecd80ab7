"""What the SQL mixins of a store share: its connection, transactions and dialect hooks.

A backend (``sqlite.SqliteStore``, ``postgres.PostgresStore``) opens the connection,
defines ``transaction`` and sets the hooks below; the mixins (``sql_deliveries``,
``sql_editions``, ``sql_subscribers``, ``sql_web``) inherit :class:`SqlParts` so that
the type checker knows them without importing a backend back (which imports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING

from .sql_connection import Connection
from .sql_dialect import SQLITE, Dialect
from .sql_subscriber_ids import remember_ids

__all__ = ["BLOCKED", "CLAIM_LEASE", "SqlParts"]

# Whether the subscribers row ``s`` is unsubscribed or bounced (nothing more is sent).
BLOCKED = "(s.unsubscribed_at IS NOT NULL OR s.bounced_at IS NOT NULL)"
# How long a claim reserves a delivery for its sender (``open_store(lease=...)``).
CLAIM_LEASE = timedelta(seconds=60)  # as config.StateConfig.lease


class SqlParts:
    _id_key: bytes  # the subscriber id key (sql_subscriber_ids)
    # Dialect hooks, set by the backend.
    _temp_schema = "temp"  # where TEMP tables live (PostgreSQL: pg_temp)
    _table_options = " WITHOUT ROWID"  # after a key-only table's columns ("" on PostgreSQL)
    _dialect: Dialect = SQLITE  # many rows at once (sql_dialect)
    _claim_lock = ""  # after claim's SELECT (PostgreSQL: FOR UPDATE OF d SKIP LOCKED)
    _row_lock = ""  # after a read-then-write SELECT (PostgreSQL: FOR UPDATE)
    # Whether claim takes over another sender's lapsed ``sending`` rows (senders share
    # the ledger and renew their leases; a single SQLite sender recovers at start).
    shared = False
    lease: timedelta = CLAIM_LEASE

    _db: Connection  # the backend's (one connection per store object)

    if TYPE_CHECKING:  # defined by the backend

        def transaction(self) -> AbstractContextManager[Connection]:
            """One write transaction; nested ones join it."""

        def _map_errors(self, what: str) -> AbstractContextManager[None]:
            """The backend's translation point, for generators (``translate_methods``
            wraps the plain methods)."""

        def _drop_temp(self, table: str) -> None:
            """Drop a TEMP table if it still exists (the end of ``seen_addresses``)."""

    def _remember_ids(self, keys: Sequence[str]) -> None:
        """Map the subscriber ids of these email keys, in the caller's transaction."""
        remember_ids(self._db, self._id_key, keys, self._dialect)
