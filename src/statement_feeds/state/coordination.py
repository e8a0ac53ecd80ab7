"""Opening the coordination of several daemons: the one place that picks it.

SQLite (no ``[state] url``): None, and today's behaviour stays: one daemon per state
folder under a file lock, woken by SIGUSR1. PostgreSQL: a
:class:`~.postgres_coordination.PostgresCoordinator` (connections are made on first use).
"""

from __future__ import annotations

from ..config import Config
from .coordination_api import DEFAULT_HEARTBEAT, Coordinator
from .postgres_connection import conninfo
from .postgres_errors import map_connect_errors, map_postgres_errors

__all__ = ["open_coordinator", "ping_database", "wake_daemons"]


def open_coordinator(config: Config, interval: float = DEFAULT_HEARTBEAT) -> Coordinator | None:
    """The coordinator of this configuration's state, or None for SQLite."""
    if not config.state.url:
        return None
    from .postgres_coordination import PostgresCoordinator

    return PostgresCoordinator(config.state.url, interval)


def ping_database(url: str, timeout: int = 3) -> None:
    """Connect and ``SELECT 1`` (``/healthz``): StateError or StoreError when it fails."""
    import psycopg

    # Its own short connect timeout: a probe must answer before the prober gives up.
    with map_connect_errors(url):
        conn = psycopg.connect(conninfo(url, connect_timeout=timeout), autocommit=True)
    with conn, map_postgres_errors("answer SELECT 1"):
        conn.execute("SELECT 1").fetchone()


def wake_daemons(config: Config) -> int:
    """``digest send`` with ``[state] url``: NOTIFY the live daemons (on any host) to
    deliver. Returns how many there are: 0 (none, or SQLite) means deliver yourself."""
    coordinator = open_coordinator(config)
    if coordinator is None:
        return 0
    try:
        live = coordinator.live_daemons()
        if live:
            coordinator.notify_send()
    finally:
        coordinator.close()
    return len(live)
