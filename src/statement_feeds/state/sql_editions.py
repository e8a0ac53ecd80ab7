"""Editions in the state database: planning one in a transaction, listing them, retries.

A mixin of both stores (``sqlite.SqliteStore``, ``postgres.PostgresStore``): the
edition half of ``api.Ledger`` (the delivery
state machine is ``sql_deliveries``) and the edition counts of ``api.StoreMetrics``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from ..domain.subscribers import email_key
from .api import Edition, EditionStatus, LedgerCounts, PlannedDelivery
from .batches import chunks
from .sql_connection import Connection
from .sql_corrections import record_corrections
from .sql_parts import BLOCKED as _BLOCKED
from .sql_parts import SqlParts
from .timestamps import from_ts, to_ts

__all__ = ["DeliveryBatch", "EditionTables", "write_batch"]

MessageIdFor = Callable[[int, str], str]
_NONE_FIXED = "[]"  # the corrected ids of a delivery without corrections, as JSON


class EditionTables(SqlParts):
    _ids_json: dict[tuple[str, ...], str]  # statement ids → their JSON text (see _json)

    if TYPE_CHECKING:  # sql_deliveries.DeliveryStateMachine's

        def counts(self, edition_id: int | None = None) -> LedgerCounts: ...

    def edition_for(self, frequency: str, due_at: datetime) -> Edition | None:
        row = self._db.execute(
            "SELECT id, frequency, due_at, planned_at, deliveries FROM editions"
            " WHERE frequency = ? AND due_at = ?",
            (frequency, to_ts(due_at)),
        ).fetchone()
        return None if row is None else _edition(row)

    def plan_edition(
        self,
        frequency: str,
        due_at: datetime,
        planned_at: datetime,
        deliveries: Iterable[PlannedDelivery],
        message_id_for: object,
    ) -> Edition:
        """Record a whole edition in one transaction; an existing one is returned as is.

        ``deliveries`` is consumed inside the transaction, so it may be a generator
        that calls this store (``sync_subscribers``, ``subscriber_states``). If it or
        ``message_id_for`` raises, nothing of the edition is recorded.
        """
        if not callable(message_id_for):
            raise TypeError("message_id_for must be a callable (edition_id, email) -> str")
        make_id = cast(MessageIdFor, message_id_for)
        # The page cache stays at its bounded 32 MiB: a bigger one for big editions
        # made peak RSS grow with the list (and bought little time).
        return self._plan(frequency, due_at, planned_at, deliveries, make_id)

    def _plan(
        self,
        frequency: str,
        due_at: datetime,
        planned_at: datetime,
        deliveries: Iterable[PlannedDelivery],
        make_id: MessageIdFor,
    ) -> Edition:
        with self.transaction() as db:
            existing = self.edition_for(frequency, due_at)
            if existing is not None:
                return existing
            planned = to_ts(planned_at)
            edition_id = self._new_edition(db, frequency, due_at, planned)
            if edition_id is None:  # another host planned it meanwhile (PostgreSQL: it waited)
                return cast(Edition, self.edition_for(frequency, due_at))
            total = 0
            given: set[str] = set()
            for chunk in chunks(deliveries):
                batch = self._delivery_rows(edition_id, planned, chunk, make_id)
                write_batch(self._insert_rows, self._db, edition_id, batch)
                given.update(row[1] for row in batch.assigned)
                total += len(batch.deliveries)
            self._end_edition(db, edition_id, given, total)
        return Edition(edition_id, frequency, due_at, planned_at, total)

    def _new_edition(
        self, db: Connection, frequency: str, due_at: datetime, planned: str
    ) -> int | None:
        """The new edition's id; None when it exists (``ON CONFLICT``: planned by another)."""
        row = db.execute(
            "INSERT INTO editions (frequency, due_at, planned_at) VALUES (?, ?, ?)"
            " ON CONFLICT (frequency, due_at) DO NOTHING RETURNING id",
            (frequency, to_ts(due_at), planned),
        ).fetchone()
        return None if row is None else int(row[0])

    def _end_edition(self, db: Connection, edition_id: int, given: set[str], total: int) -> None:
        # The keys ever assigned (sql_subscribers.ever_assigned), in this transaction,
        # once, at the end and in key order: a new key's row is locked until the commit,
        # and written chunk by chunk two plans giving two new keys in opposite orders
        # would each wait for the other (a deadlock, one plan aborted); this way the
        # second only waits for the first's commit.
        self._dialect.insert_many(
            db,
            "assigned_keys",
            (("translation_key", "text"),),
            [(key,) for key in sorted(given)],
            "ON CONFLICT (translation_key) DO NOTHING",
        )
        db.execute("UPDATE editions SET deliveries = ? WHERE id = ?", (total, edition_id))

    def _delivery_rows(
        self,
        edition_id: int,
        planned: str,
        chunk: list[PlannedDelivery],
        make_id: MessageIdFor,
    ) -> DeliveryBatch:
        """The rows of a chunk's deliveries and assigned keys, and its corrections."""
        rows: list[tuple[Any, ...]] = []
        keys: list[tuple[Any, ...]] = []
        corrected: list[tuple[str, PlannedDelivery]] = []
        # Deliveries share a few ``updated`` tuples: format each once (to_ts per key and
        # delivery was a seventh of planning's Python time).
        stamps: dict[tuple[datetime, ...], list[str | None]] = {}
        for item in chunk:
            key = email_key(item.email)
            message_id = make_id(edition_id, item.email)
            ids = self._json(item.statement_ids)
            fixed = (
                self._json(tuple(c.statement_id for c in item.corrections))
                if item.corrections
                else _NONE_FIXED
            )
            # state, next_attempt_at, updated_at: written here, not added by a second pass
            rows.append(
                (key, edition_id, item.email, item.name, item.lang, ids, fixed, message_id,
                 "pending", planned, planned)
            )  # fmt: skip
            # What went of each key: the version and its ``updated`` (sql_corrections).
            updated = stamps.get(item.updated)
            if updated is None:
                updated = stamps[item.updated] = [to_ts(u) for u in item.updated]
            count = len(item.translation_keys)
            updated = updated or [None] * count
            # zip and repeat: the tuples made in C (a generator's frame per row was not).
            keys.extend(
                zip(
                    repeat(key, count),
                    item.translation_keys,
                    repeat(edition_id, count),
                    item.statement_ids,
                    updated,
                    strict=True,
                )
            )
            if item.corrections:
                corrected.append((key, item))
        # Key order makes the B-tree inserts sequential within the chunk.
        rows.sort(key=itemgetter(0))
        keys.sort(key=itemgetter(0, 1))
        return DeliveryBatch(rows, keys, corrected)

    def _insert_rows(
        self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert many rows (PostgreSQL: ``COPY``, several times faster)."""
        marks = ", ".join("?" * len(columns))
        self._db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            rows,
        )

    def _json(self, ids: tuple[str, ...]) -> str:
        # Few distinct digests per edition: encode each once.
        text = self._ids_json.get(ids)
        if text is None:
            if len(self._ids_json) > 10_000:
                self._ids_json.clear()
            text = self._ids_json[ids] = json.dumps(list(ids), ensure_ascii=False)
        return text

    def editions(self, limit: int = 20) -> list[EditionStatus]:
        """The latest editions, newest due time first, with per-state delivery counts."""
        rows = self._db.execute(
            "SELECT id, frequency, due_at, planned_at, deliveries FROM editions"
            " ORDER BY due_at DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [EditionStatus(_edition(row), self.counts(int(row[0]))) for row in rows]

    def retry_failed(self, edition_id: int | None = None, now: datetime | None = None) -> int:
        """``failed`` → ``pending``, due at once, except for bounced or unsubscribed addresses.

        ``first_attempt_at`` and ``attempts`` are cleared so that the retry lifetime
        and the backoff start afresh (else the first retry would wait the longest step).
        """
        stamp = None if now is None else to_ts(now)
        with self.transaction() as db:
            return db.execute(
                "UPDATE deliveries SET state = 'pending', first_attempt_at = NULL, attempts = 0,"
                " next_attempt_at = updated_at, updated_at = COALESCE(?, updated_at)"
                " WHERE state = 'failed' AND (CAST(? AS INTEGER) IS NULL OR edition_id = ?)"
                " AND NOT EXISTS (SELECT 1 FROM subscribers s"
                " WHERE s.email = deliveries.email_key AND " + _BLOCKED + ")",
                (stamp, edition_id, edition_id),
            ).rowcount

    def history_start(self) -> datetime | None:
        # Text order is time order (timestamps.to_ts); MIN of NULLs (empty tables) is NULL.
        row = self._db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(joined_at) AS t FROM subscribers"
            " UNION ALL SELECT MIN(planned_at) FROM editions) AS h"
        ).fetchone()
        return None if row[0] is None else from_ts(row[0])

    def edition_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM editions").fetchone()[0])


DELIVERY_COLUMNS = (
    "email_key",
    "edition_id",
    "email",
    "name",
    "lang",
    "statement_ids",
    "corrected_ids",
    "message_id",
    "state",
    "next_attempt_at",
    "updated_at",
)
ASSIGNED_COLUMNS = (
    "email_key",
    "translation_key",
    "edition_id",
    "statement_id",
    "statement_updated_at",
)


@dataclass(frozen=True, slots=True)
class DeliveryBatch:
    """A chunk of an edition, as rows: ``deliveries`` and ``assigned`` in key order."""

    deliveries: list[tuple[Any, ...]]
    assigned: list[tuple[Any, ...]]
    corrected: list[tuple[str, PlannedDelivery]]


InsertRows = Callable[[str, tuple[str, ...], list[tuple[Any, ...]]], None]


def write_batch(insert: InsertRows, db: Connection, edition_id: int, batch: DeliveryBatch) -> None:
    """Write a chunk of an edition: ``insert`` (table, columns, rows) its rows, then its
    corrections on ``db``. Both stores' one connection, or PostgreSQL's edition writer."""
    insert("deliveries", DELIVERY_COLUMNS, batch.deliveries)
    # No ON CONFLICT on purpose: assigning a key twice is a bug and must abort the plan.
    insert("assigned", ASSIGNED_COLUMNS, batch.assigned)
    record_corrections(db, edition_id, batch.corrected)


def _edition(row: Any) -> Edition:
    return Edition(int(row[0]), row[1], from_ts(row[2]), from_ts(row[3]), int(row[4]))
