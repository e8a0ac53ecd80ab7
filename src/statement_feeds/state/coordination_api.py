"""Several daemons on one database: what the daemon and the CLI need from coordination.

Only the PostgreSQL state has one (:mod:`.postgres_coordination`); with SQLite there is
no :class:`Coordinator` at all (:func:`.coordination.open_coordinator` returns None) and
one daemon per state folder is enforced by a file lock, as before.

* **Leadership**: exactly one daemon runs the scheduler and plans editions. It is the
  holder of a session-level advisory lock, which the server drops when the session ends
  (a closed connection, a dead host noticed through TCP keepalives).
* **Heartbeats**: every daemon upserts its row in ``daemons`` every interval; a row
  older than :data:`MISSED_HEARTBEATS` intervals is stale (not listed, and pruned).
  The times are the database server's clock, one clock for every host.
* **Wake-ups**: ``digest send`` (or the leader after planning) sends a ``NOTIFY``;
  every daemon ``LISTEN``s and then delivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["DEFAULT_HEARTBEAT", "MISSED_HEARTBEATS", "Coordinator", "DaemonInfo"]

# Seconds between heartbeats (``run --heartbeat``).
DEFAULT_HEARTBEAT = 5.0
# A daemon whose last heartbeat is older than this many intervals is gone.
MISSED_HEARTBEATS = 3


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """One live daemon, as ``status`` shows it."""

    name: str  # unique per process: host, pid and start time
    host: str
    pid: int
    leader: bool
    heartbeat_at: datetime  # aware, the database server's clock
    started_at: datetime


class Coordinator(Protocol):
    """One daemon's (or one command's) handle on the shared coordination state.

    Synchronous calls make blocking round trips: the daemon runs them in a thread.
    Errors are :class:`~statement_feeds.errors.StateError` (cannot connect) or
    :class:`~statement_feeds.errors.StoreError`; after one, the connection concerned is
    dropped (and leadership with it) and the next call connects again.
    """

    @property
    def interval(self) -> float:
        """Seconds between heartbeats; staleness is :data:`MISSED_HEARTBEATS` of them."""

    @property
    def is_leader(self) -> bool:
        """Whether this process held leadership at its last heartbeat."""

    def start(self, name: str, host: str, pid: int) -> None:
        """Register this daemon (its row) and start listening for wake-ups."""

    def heartbeat(self, *, contend: bool = True) -> bool:
        """Upsert our row, try to take leadership if not held, prune stale rows.

        Returns whether we lead now. A lost connection is re-made here (leadership
        lost with it is tried for again on the new one). ``contend=False``: a daemon
        that cannot schedule (digests disabled) beats without trying to lead."""

    def leader(self) -> DaemonInfo | None:
        """The live daemon that leads, if any."""

    def live_daemons(self) -> list[DaemonInfo]:
        """Every daemon whose heartbeat is recent, the leader first, then by host, pid."""

    def notify_send(self) -> None:
        """Wake every listening daemon: deliveries are waiting."""

    async def wait_for_wakeup(self) -> None:
        """Return when a wake-up arrives (at once if one came since the last call).

        Integrates with the running asyncio loop (a reader on the listening socket);
        raises StoreError when the listening connection is lost. Call again to listen
        again: once that works it returns at once, as wake-ups may have been missed.
        """

    def close(self) -> None:
        """Give up leadership at once, delete our row, close the connections."""
