"""Opening the state store: the one place that picks a backend.

Everything outside ``state/`` calls :func:`open_store` and works with the protocols
of ``state.api``. Only SQLite exists for now; a second backend (PostgreSQL) is a
module implementing :class:`~statement_feeds.state.api.Store` and a branch here.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from .api import Store
from .sqlite import SqliteStore

__all__ = ["open_store"]


def open_store(where: Config | Path) -> Store:
    """The state store of this configuration (or of this state directory), migrated.

    Close it when done (or use it in a ``with`` block).
    """
    state_dir = where if isinstance(where, Path) else where.paths.state
    return SqliteStore.open(state_dir)
