"""A sender's ledger writes on PostgreSQL, made from the event loop: :class:`LoopWriter`.

A sender writes once per turn of its loop (``digests.record.GroupCommit``): the replies
that came in and the next hand-overs, almost always as one statement
(``SENT_AND_STARTED``). Run through psycopg in a thread, each write cost three
wake-ups (the thread, psycopg's wait on the socket, the loop again) and ~0.2 ms of
system time in psycopg's per-query epoll set-up: on a loopback server more than the
statement itself (bench/scale_bench.py). Here the statement is prepared once on a
connection of the writer's own, sent with libpq's non-blocking calls, and its reply is
read when the loop's own selector sees the socket readable: no thread, no extra wait.

Its parameters are sent as text. The arrays are written by :func:`text_array` (the
array literal PostgreSQL parses: every element double-quoted, ``"`` and ``\\``
escaped); a property test compares its arrays with psycopg's own adaptation through a
real server (tests/state/test_postgres_writer.py).

Every other write (deferrals, failures, cancelled hand-overs: rare) goes to the store's
own ``record`` in a thread, as before; the caller runs one write at a time, so the two
connections never race. Errors pass ``postgres_errors`` as everywhere in ``state``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq

from ..domain.subscribers import email_key
from ..errors import StoreError
from .api import Delivery, Outcome
from .postgres_errors import RETRIES, is_conflict, map_postgres_errors
from .sql_parts import BLOCKED
from .timestamps import to_ts

__all__ = ["SENT_AND_STARTED", "LoopWriter", "text_array"]

# ``record``'s usual turn in one statement (autocommit: its own transaction). The same
# conditions as sql_deliveries' _SENT and _START; set_config(..., true) applies to this
# statement's transaction only, and is evaluated (an init plan) before any row changes.
# ``claimed_by IS NOT DISTINCT FROM`` (not ``=``, which is the same here: the parameter is
# never NULL) keeps the planner on the primary key: with ``=`` it may AND the claims and
# due indexes instead (they look selective while the statistics predate the edition) and
# filter all of this sender's claimed rows per call: 2.1 ms instead of 0.65 ms for a
# turn of four, measured on a freshly planned edition (half of the sender's time).
SENT_AND_STARTED = (
    """
WITH cfg AS MATERIALIZED (SELECT set_config('synchronous_commit', %(commit)s, true) AS v),
sent AS (
    UPDATE deliveries d SET state = 'sent', last_code = NULL, last_error = NULL,
        claimed_by = NULL, updated_at = %(stamp)s
    FROM unnest(%(sent_keys)s::text[], %(sent_editions)s::bigint[]) AS v(k, e)
    WHERE (SELECT v FROM cfg) IS NOT NULL
        AND d.email_key = v.k AND d.edition_id = v.e AND d.claimed_by IS NOT DISTINCT FROM %(me)s
        AND d.state IN ('pending', 'deferred', 'sending')
),
started AS (
    UPDATE deliveries d SET state = 'sending', attempts = d.attempts + 1,
        first_attempt_at = COALESCE(d.first_attempt_at, %(stamp)s), updated_at = %(stamp)s
    FROM unnest(%(start_keys)s::text[], %(start_editions)s::bigint[]) AS v(k, e)
    WHERE (SELECT v FROM cfg) IS NOT NULL
        AND d.email_key = v.k AND d.edition_id = v.e AND d.claimed_by IS NOT DISTINCT FROM %(me)s
        AND d.state IN ('pending', 'deferred')
        AND NOT EXISTS (SELECT 1 FROM subscribers s
                        WHERE s.email = d.email_key AND """
    + BLOCKED
    + """)
    RETURNING d.email_key, d.edition_id
)
SELECT email_key, edition_id FROM started
"""
)
# The same with libpq's numbered parameters, in this order.
_NAMES = ("commit", "stamp", "me", "sent_keys", "sent_editions", "start_keys", "start_editions")
_NUMBERED = re.sub(
    r"%\((\w+)\)s", lambda m: f"${_NAMES.index(m.group(1)) + 1}", SENT_AND_STARTED
).encode()
_PREPARED = b"statement_feeds_sent_and_started"

Key = tuple[str, int]
Fallback = Callable[[Sequence[Outcome], Sequence[Delivery], datetime], list[bool]]
Cancel = Callable[[list[Key], list[bool], str], list[bool]]


def text_array(items: Sequence[str | int]) -> bytes:
    """The text form of a one-dimensional array: ``{"a","b\\"c"}``, ``{1,2}``."""
    parts = [
        str(item)
        if isinstance(item, int)
        else '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for item in items
    ]
    return ("{" + ",".join(parts) + "}").encode()


class LoopWriter:
    """``record`` for a sender's event loop; one write at a time (the caller's rule)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        claimant: str,
        commit: str,
        fallback: Fallback,
        cancel: Cancel,
    ) -> None:
        self._conn = conn
        self._pg = conn.pgconn
        self._claimant = claimant.encode()
        self._commit = commit.encode()
        self._fallback = fallback
        self._cancel = cancel
        self._waiter: asyncio.Future[None] | None = None
        self._watched: asyncio.AbstractEventLoop | None = None  # whose selector reads it
        self._fd = -1
        with map_postgres_errors("prepare the sender's writes"):
            # Planned once (see PostgresStore._sent_and_started for why generic).
            conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.execute("SET client_encoding = 'UTF8'")  # what the parameters are
            _check(self._pg.prepare(_PREPARED, _NUMBERED))
        self._pg.nonblocking = 1

    async def record(
        self, outcomes: Sequence[Outcome], start: Sequence[Delivery], now: datetime
    ) -> list[bool]:
        """As ``Ledger.record``: the replies, then the hand-overs; which may be sent."""
        keys = [(email_key(d.email), d.edition_id) for d in start]
        sent = [(email_key(o.delivery.email), o.delivery.edition_id) for o in outcomes]
        if any(o.state != "sent" for o in outcomes) or set(sent) & set(keys):
            return await asyncio.to_thread(self._fallback, outcomes, start, now)
        stamp = to_ts(now)
        params = [
            self._commit,
            stamp.encode(),
            self._claimant,
            text_array([k for k, _ in sent]),
            text_array([e for _, e in sent]),
            text_array([k for k, _ in keys]),
            text_array([e for _, e in keys]),
        ]
        started = await self._retrying(params)
        allowed = [key in started for key in keys]
        if all(allowed):
            return allowed
        return await asyncio.to_thread(self._cancel, keys, allowed, stamp)

    async def _retrying(self, params: list[bytes]) -> set[Key]:
        for tries in range(1, RETRIES + 1):
            try:
                return await self._execute(params)
            except StoreError as exc:
                if tries == RETRIES or not is_conflict(exc):
                    raise
            await asyncio.sleep(0.02 * tries)  # let the other transaction finish
        raise AssertionError("unreachable")

    async def _execute(self, params: list[bytes]) -> set[Key]:
        loop = asyncio.get_running_loop()
        with map_postgres_errors("write"):
            self._watch(loop)  # the socket of a broken connection is an error too
            if self._pg.transaction_status == pq.TransactionStatus.ACTIVE:
                # A write cancelled mid-flight: the server finishes it anyway; its reply
                # comes first (libpq refuses another command until it is read).
                await self._replied(loop)
                self._results()  # whatever it did, its hand-overs were given up
            self._pg.send_query_prepared(_PREPARED, params)
            await self._replied(loop)
            return _rows(self._results())

    async def _replied(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._pg.flush():  # the socket's buffer is full: rare, small statements
            await asyncio.sleep(0)
        while self._pg.is_busy():
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _results(self) -> list[pq.abc.PGresult]:
        results = []
        while (result := self._pg.get_result()) is not None:
            results.append(result)
        return results

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watched is not loop:
            self._unwatch()
            self._fd = self._pg.socket
            loop.add_reader(self._fd, self._readable)
            self._watched = loop

    def _unwatch(self) -> None:
        if self._watched is not None and not self._watched.is_closed():
            self._watched.remove_reader(self._fd)
        self._watched = None

    def _readable(self) -> None:
        waiter = self._waiter
        try:
            self._pg.consume_input()
        except psycopg.Error as exc:  # the connection broke: the write in flight fails
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            self._unwatch()
            return
        if waiter is not None and not waiter.done() and not self._pg.is_busy():
            waiter.set_result(None)

    def close(self) -> None:
        self._unwatch()
        self._conn.close()  # an unread reply (a cancelled write) goes with it


def _check(result: pq.abc.PGresult) -> None:
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding="utf-8")


def _rows(results: list[pq.abc.PGresult]) -> set[Key]:
    rows: set[Key] = set()
    for result in results:
        _check(result)
        for row in range(result.ntuples):
            key, edition = result.get_value(row, 0), result.get_value(row, 1)
            if key is not None and edition is not None:
                rows.add((bytes(key).decode(), int(bytes(edition))))
    return rows
