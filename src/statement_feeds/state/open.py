"""Opening the state store: the one place that picks a backend.

Everything outside ``state/`` calls :func:`open_store` and works with the protocols
of ``state.api``: SQLite in ``paths.state`` by default, PostgreSQL when the
configuration has ``[state] url``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ..config import Config
from .api import Store
from .postgres import PostgresStore
from .sql_parts import CLAIM_LEASE
from .sqlite import SqliteStore

__all__ = ["open_store"]


def open_store(where: Config | Path, *, lease: timedelta | None = None) -> Store:
    """The state store of this configuration (or of this state directory), migrated.

    ``lease``: how long a sender's claim holds without renewal (default: the
    configuration's ``state.lease``). Close the store when done (or use it in a
    ``with`` block).
    """
    if lease is None:
        lease = where.state.lease if isinstance(where, Config) else CLAIM_LEASE
    if isinstance(where, Config) and where.state.url:
        return PostgresStore(where.state.url, lease=lease)
    state_dir = where if isinstance(where, Path) else where.paths.state
    return SqliteStore.open(state_dir, lease=lease)
