"""Planning an edition on PostgreSQL: the edition written by a second connection, in a
thread, while the first reads the list (:class:`PostgresPlanning`).

Planning alternates two kinds of work: Python (reading the list, choosing, building rows)
and the server (looking addresses up, inserting a million deliveries). On one connection
they take turns: at 20,000 subscribers the plan took 3.6 s of wall time for 2.0 s of
Python and 1.8 s of server CPU (bench/plan_bench.py prints both). Here the edition's
rows go to a connection of their own, written by a thread from a short queue, so the
server inserts one chunk while Python builds the next.

Two transactions, committed in this order:

1. the store's own: what reading the list writes (first sightings, join times of new
   addresses), exactly as ``sync_subscribers`` would;
2. the writer's: the edition row, its deliveries, assigned keys and corrections.

If anything fails before the first commit, both roll back. If the second commit fails
after the first, the state is that of a sync without the plan: the next plan does it,
and nobody was mailed. The edition row is inserted first, so a second host planning the
same edition waits on its unique key and then returns this one, as before.

The rows the writer inserts are counted, and analysed after its commit as the store's
are (``PostgresStore._analyze_grown``).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import datetime
from typing import Any, cast

import psycopg

from ..errors import StoreError
from .api import Edition, PlannedDelivery
from .batches import chunks
from .postgres_connection import PgConnection, copy_rows
from .postgres_errors import map_postgres_errors
from .sql_editions import DeliveryBatch, EditionTables, write_batch
from .timestamps import to_ts

__all__ = ["QUEUED", "EditionWriter", "PostgresPlanning"]

QUEUED = 2  # chunks built ahead of the writer (each ~5,000 deliveries): bounded memory
MessageIdFor = Callable[[int, str], str]


class EditionWriter:
    """The writer's connection and thread: ``put`` batches, then ``finish`` and ``commit``.

    Every error of the thread is raised in the caller at its next ``put`` or at
    ``finish``; ``close`` rolls back whatever was not committed.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        analyze: Callable[[psycopg.Connection[Any], Counter[str]], None],
    ) -> None:
        self._conn = conn
        self._db = PgConnection(conn)  # ``?`` placeholders, as the shared SQL writes them
        self._analyze = analyze  # the store's, after the commit
        self._queue: queue.Queue[tuple[int, DeliveryBatch] | None] = queue.Queue(QUEUED)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.grown: Counter[str] = Counter()
        with map_postgres_errors("plan"):
            conn.execute("BEGIN")

    @property
    def db(self) -> PgConnection:
        """The writer's connection, for statements before ``start`` and after ``finish``."""
        return self._db

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edition-writer", daemon=True)
        self._thread.start()

    def put(self, edition_id: int, batch: DeliveryBatch) -> None:
        """Queue a batch (waits while ``QUEUED`` are ahead); raises the thread's error.
        A failed thread goes on taking batches (and dropping them), so this never hangs."""
        self._raise()
        self._queue.put((edition_id, batch))

    def finish(self) -> None:
        """Wait until every queued batch is written; raises the thread's error."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def commit(self) -> None:
        with map_postgres_errors("plan"):
            self._conn.execute("COMMIT")
        self._analyze(self._conn, self.grown)

    def close(self) -> None:
        """Stop the thread (dropping what is queued) and roll back what is not committed."""
        if self._thread is not None:
            self._error = self._error or StoreError("the plan was stopped")
            with suppress(queue.Empty):  # only this thread puts: then there is room
                while True:
                    self._queue.get_nowait()
            self._queue.put(None)
            self._thread.join()  # after the batch it is writing, if any
            self._thread = None
        self._conn.close()  # an open transaction is rolled back with it

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # failed or stopped: drop the rest, wait for the stop mark
            edition_id, batch = item
            try:
                with map_postgres_errors("plan"):
                    write_batch(self._copy, self._db, edition_id, batch)
            except BaseException as exc:  # raised in the planning thread
                self._error = exc

    def _copy(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        copy_rows(self._conn, table, columns, rows)
        self.grown[table] += len(rows)


class PostgresPlanning(EditionTables):
    """``EditionTables._plan`` with the edition written by an :class:`EditionWriter`."""

    _depth: int  # PostgresStore's: how deep its own transaction is (0: none open)

    def _edition_writer(self) -> EditionWriter:
        raise NotImplementedError  # PostgresStore's: it knows the URL and the connection

    def _plan(
        self,
        frequency: str,
        due_at: datetime,
        planned_at: datetime,
        deliveries: Iterable[PlannedDelivery],
        make_id: MessageIdFor,
    ) -> Edition:
        existing = self.edition_for(frequency, due_at)
        if existing is not None:
            return existing
        if self._depth:  # inside a caller's transaction all must join it: one connection
            return super()._plan(frequency, due_at, planned_at, deliveries, make_id)
        writer = self._edition_writer()
        try:
            planned = to_ts(planned_at)
            with map_postgres_errors("plan"):
                edition_id = self._new_edition(writer.db, frequency, due_at, planned)
            if edition_id is None:  # another host planned it meanwhile: it waited for it
                return cast(Edition, self.edition_for(frequency, due_at))
            writer.start()
            total = 0
            given: set[str] = set()
            with self.transaction():  # what reading the list writes: committed first
                for chunk in chunks(deliveries):
                    batch = self._delivery_rows(edition_id, planned, chunk, make_id)
                    given.update(row[1] for row in batch.assigned)
                    total += len(batch.deliveries)
                    writer.put(edition_id, batch)
                writer.finish()
                with map_postgres_errors("plan"):
                    self._end_edition(writer.db, edition_id, given, total)
            writer.commit()
        finally:
            writer.close()
        return Edition(edition_id, frequency, due_at, planned_at, total)
