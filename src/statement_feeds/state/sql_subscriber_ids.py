"""Subscriber ids in the state database: the opaque ids links carry, mapped back to addresses.

The id is ``domain.tokens.subscriber_id(key, address)``. The key is made by a
migration (``settings.subscriber_id_key``: SQLite's 4, PostgreSQL's 1) and never
rotated, so that ids in mail already sent keep resolving; ``subscriber_ids`` maps
each id to its email key. Each store
calls :func:`remember_ids` wherever it first records an address, in the same
transaction, so every address it knows has its id before any mail can carry it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..domain.tokens import subscriber_id
from .sql_connection import Connection
from .sql_dialect import SQLITE, Dialect

__all__ = ["address_for_id", "load_id_key", "remember_ids"]


def load_id_key(conn: Connection) -> bytes:
    """The database's subscriber id key (ValueError if it is missing or damaged)."""
    row = conn.execute("SELECT value FROM settings WHERE name = 'subscriber_id_key'").fetchone()
    if row is None:
        raise ValueError("the subscriber id key is missing from the settings table")
    return bytes.fromhex(str(row[0]))


def remember_ids(
    conn: Connection, id_key: bytes, email_keys: Sequence[str], dialect: Dialect = SQLITE
) -> None:
    """Map the ids of these (case-folded) addresses; known ones are left as they are."""
    # Sorted: ids are random, and B-tree inserts in key order are far cheaper.
    dialect.insert_many(
        conn,
        "subscriber_ids",
        (("id", "text"), ("email", "text")),
        sorted((subscriber_id(id_key, key), key) for key in email_keys),
        "ON CONFLICT (id) DO NOTHING",
    )


def address_for_id(conn: Connection, sid: str) -> str | None:
    row = conn.execute("SELECT email FROM subscriber_ids WHERE id = ?", (sid,)).fetchone()
    return None if row is None else str(row[0])
