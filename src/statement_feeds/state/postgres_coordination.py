"""Several daemons on one PostgreSQL database: leader, heartbeats, wake-ups.

Two connections per daemon, both made by :func:`.postgres_connection.connect` (client
TCP keepalives, so that we notice a dead server):

* the **heartbeat connection** holds leadership, a session-level
  ``pg_try_advisory_lock(LEADER_KEY)``: the server releases it the moment the session
  ends, whether by ``close``, a crash or kill -9 of the process (the kernel closes the
  socket), or the server's keepalives (set by this session) giving up on a vanished
  host. Every heartbeat upserts our row in
  ``daemons``, marks the other rows not leading when we lead, and prunes stale rows;
* ``notify_send`` uses a short-lived connection of its own (rare: an edition planned);
* the **listening connection** is only ever read, from the asyncio loop
  (``loop.add_reader`` on its socket), never used by another thread: libpq allows one
  user per connection at a time, and the heartbeat runs in a worker thread.

A lost connection is dropped at once (with it, leadership: the caller stops scheduling)
and made again on the next call. All times are the database server's
(``clock_timestamp()``), one clock for every host, so host clocks may disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, LiteralString

import psycopg
from psycopg.rows import TupleRow

from ..errors import StoreError
from .coordination_api import DEFAULT_HEARTBEAT, MISSED_HEARTBEATS, DaemonInfo
from .postgres_connection import KEEPALIVE_LIMIT, connect
from .postgres_errors import map_postgres_errors

__all__ = ["CHANNEL", "LEADER_KEY", "PostgresCoordinator"]

# The advisory lock whose holder leads (advisory locks are per database). The digits
# spell "SFLEAD" in ASCII: distinct from any other lock key of ours.
LEADER_KEY = 0x5346_4C45_4144
CHANNEL = "statement_feeds_send"

# The client's keepalives (postgres_connection) let *us* notice a dead server; the lock
# is freed only when the *server* notices that our host is gone, by its own keepalives,
# which default to the OS's (two hours on Linux). So this session sets them like ours:
# a vanished host's session ends, and its leadership passes on, within KEEPALIVE_LIMIT.
_SERVER_KEEPALIVES = f"""
SELECT set_config('tcp_keepalives_idle', '5', false),
       set_config('tcp_keepalives_interval', '2', false),
       set_config('tcp_keepalives_count', '3', false),
       set_config('tcp_user_timeout', '{KEEPALIVE_LIMIT * 1000}', false)
"""
_BEAT = """
WITH up AS (
    INSERT INTO daemons (name, host, pid, started_at, heartbeat_at, leader)
    VALUES (%(name)s, %(host)s, %(pid)s, %(started)s, clock_timestamp(), %(leader)s)
    ON CONFLICT (name) DO UPDATE
        SET heartbeat_at = excluded.heartbeat_at, leader = excluded.leader
    RETURNING 1
), demoted AS (
    -- Only the lock holder leads: a row of a leader that died says so no longer.
    UPDATE daemons SET leader = false
    WHERE %(leader)s AND leader AND name <> %(name)s
    RETURNING 1
), pruned AS (
    DELETE FROM daemons
    WHERE heartbeat_at < clock_timestamp() - make_interval(secs => %(stale)s)
        AND name <> %(name)s
    RETURNING 1
)
SELECT (SELECT count(*) FROM pruned)
"""
_UNLOCK = "SELECT pg_advisory_unlock(%s)"
_LEAVE = "DELETE FROM daemons WHERE name = %s"
_LIVE = """
SELECT name, host, pid, leader, heartbeat_at, started_at FROM daemons
WHERE heartbeat_at >= clock_timestamp() - make_interval(secs => %s)
ORDER BY leader DESC, host, pid
"""


class PostgresCoordinator:
    """:class:`~.coordination_api.Coordinator` on the PostgreSQL state (``[state] url``)."""

    def __init__(self, url: str, interval: float = DEFAULT_HEARTBEAT) -> None:
        self._url = url
        self._interval = interval
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._listener: psycopg.Connection[TupleRow] | None = None
        self._me: dict[str, Any] | None = None  # our row, once started
        self._leader = False
        self._missed = False  # the listening connection was lost since the last wake-up
        self.pruned = 0  # stale rows this coordinator removed (for the log and tests)

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def stale_after(self) -> float:
        return self._interval * MISSED_HEARTBEATS

    # -- connections ------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            conn = connect(self._url, autocommit=True)
            try:
                with map_postgres_errors("set the server's keepalives"):
                    conn.execute(_SERVER_KEEPALIVES)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        """Forget the heartbeat connection: closing it ends the session, so the server
        releases the advisory lock now (if the session still exists)."""
        conn, self._conn, self._leader = self._conn, None, False
        if conn is not None:
            conn.close()

    def _run(self, what: str, query: LiteralString, params: Any = None) -> list[TupleRow]:
        """One statement on the heartbeat connection; any failure drops the connection
        (and leadership: a session that may be gone must not be believed to hold it)."""
        conn = self._connection()
        try:
            with map_postgres_errors(what):
                cursor = conn.execute(query, params)
                return cursor.fetchall() if cursor.description else []
        except BaseException:
            self._drop()
            raise

    # -- leadership and heartbeats ----------------------------------------------------------

    def start(self, name: str, host: str, pid: int) -> None:
        started = self._run("register the daemon", "SELECT clock_timestamp()")[0][0]
        self._me = {"name": name, "host": host, "pid": pid, "started": started}
        self._listen()

    def heartbeat(self, *, contend: bool = True) -> bool:
        if self._me is None:
            raise RuntimeError("heartbeat before start")
        if not self._leader and contend:
            rows = self._run("take leadership", "SELECT pg_try_advisory_lock(%s)", [LEADER_KEY])
            self._leader = bool(rows[0][0])
        params = {**self._me, "leader": self._leader, "stale": self.stale_after}
        self.pruned += int(self._run("record a heartbeat", _BEAT, params)[0][0])
        return self._leader

    def leader(self) -> DaemonInfo | None:
        return next((d for d in self.live_daemons() if d.leader), None)

    def live_daemons(self) -> list[DaemonInfo]:
        rows = self._run("list the daemons", _LIVE, [self.stale_after])
        return [_info(row) for row in rows]

    def close(self) -> None:
        """Best effort: a session already gone has let go of the lock itself, and a row
        left behind is pruned as stale by the others."""
        try:
            if self._me is not None and self._conn is not None and not self._conn.broken:
                # Unlock first: another daemon may take over before our row is gone.
                with contextlib.suppress(StoreError):
                    if self._leader:
                        self._run("give up leadership", _UNLOCK, [LEADER_KEY])
                    self._run("remove the daemon", _LEAVE, [self._me["name"]])
        finally:
            self._drop()
            self._drop_listener()
            self._me = None

    # -- wake-ups --------------------------------------------------------------------------

    def notify_send(self) -> None:
        # A connection of its own: the daemon calls this from another thread than the
        # heartbeat's, and a failure here must not cost the leadership.
        with connect(self._url, autocommit=True) as conn, map_postgres_errors("wake the senders"):
            conn.execute(f"NOTIFY {CHANNEL}")

    def _listen(self) -> psycopg.Connection[TupleRow]:
        if self._listener is None or self._listener.closed or self._listener.broken:
            self._drop_listener()
            listener = connect(self._url, autocommit=True)
            try:
                with map_postgres_errors("listen for wake-ups"):
                    listener.execute(f"LISTEN {CHANNEL}")
            except BaseException:
                listener.close()
                raise
            self._listener = listener
        return self._listener

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _drain(self, listener: psycopg.Connection[TupleRow]) -> int:
        """Read what the socket holds; the number of notifications among it."""
        pgconn = listener.pgconn
        try:
            with map_postgres_errors("read wake-ups"):
                pgconn.consume_input()  # OperationalError once the server has gone
        except BaseException:
            self._drop_listener()
            self._missed = True  # until listening again, a wake-up would be lost
            raise
        count = 0
        while pgconn.notifies() is not None:
            count += 1
        return count

    async def wait_for_wakeup(self) -> None:
        listener = await asyncio.to_thread(self._listen)
        if self._missed:  # listening again after a loss: deliver what may have been missed
            self._missed = False
            return
        if self._drain(listener):
            return
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = listener.fileno()
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                if self._drain(listener):
                    return
        finally:
            loop.remove_reader(fd)


def _info(row: TupleRow) -> DaemonInfo:
    name, host, pid, leader, heartbeat, started = row
    return DaemonInfo(
        name=name, host=host, pid=pid, leader=leader, heartbeat_at=heartbeat, started_at=started
    )
