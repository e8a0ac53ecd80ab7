"""What the SQL mixins of ``sqlite.SqliteStore`` share: its connection and transactions.

``SqliteStore`` (in ``sqlite.py``) opens the connection and defines ``transaction``;
the mixins (``sqlite_deliveries``, ``sqlite_editions``, ``sqlite_subscribers``,
``sqlite_web``) inherit :class:`SqliteParts` so that the type checker knows them
without importing ``sqlite.py`` back (which imports the mixins).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from .sqlite_subscriber_ids import remember_ids

__all__ = ["BLOCKED", "SqliteParts"]

# Whether the subscribers row ``s`` is unsubscribed or bounced (nothing more is sent).
BLOCKED = "(s.unsubscribed_at IS NOT NULL OR s.bounced_at IS NOT NULL)"


class SqliteParts:
    _db: sqlite3.Connection
    _id_key: bytes  # the subscriber id key (sqlite_subscriber_ids)

    if TYPE_CHECKING:  # defined by SqliteStore: one write transaction, nested ones join it

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def _remember_ids(self, keys: Sequence[str]) -> None:
        """Map the subscriber ids of these email keys, in the caller's transaction."""
        remember_ids(self._db, self._id_key, keys)
