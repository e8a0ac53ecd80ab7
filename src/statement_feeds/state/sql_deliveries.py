"""The delivery state machine in SQL: claims, hand-overs, outcomes, recovery.

A mixin of both stores, ``sqlite.SqliteStore`` and ``postgres.PostgresStore`` (it
uses the store's connection and ``transaction``); ``state/api.py`` draws the states.
Three moments matter:

* ``claim`` reserves due deliveries for this sender (``claimed_by`` + a lease):
  nothing leaves yet and nothing is re-sent if the sender dies now;
* ``record(start=...)`` moves a reserved delivery to ``sending`` just before it
  is handed to SMTP, in a transaction that also checks that the address is
  still subscribed (an unsubscribe takes effect for everything not yet handed
  over, claimed or not);
* ``record(outcomes=...)`` stores each reply. The sender commits the replies of
  one event-loop turn together with the next hand-overs, so ``sending`` holds at
  most the messages in flight: after a kill -9 only those go out again.

Every database error on these paths becomes a :class:`StoreError` (the backend's
translation point wraps the transaction and every public method): a sender that cannot record stops
handing messages over.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..domain.subscribers import email_key
from .api import DELIVERY_FILTERS, Delivery, DeliveryRow, LedgerCounts, Outcome
from .sql_parts import BLOCKED, CLAIM_LEASE, SqlParts
from .timestamps import from_ts, to_ts

__all__ = ["CLAIM_LEASE", "DeliveryStateMachine"]

# CLAIM_LEASE: how long a claim reserves a delivery for its sender (``SqlParts.lease``).
# A single SQLite daemon clears its claims when a run starts (``recover_unknown``); the
# lease matters to senders that share a ledger, which never take another's live claims
# (a live sender renews its leases: ``renew_claims``).
_BLOCKED = BLOCKED
_KEY = "email_key = ? AND edition_id = ?"
# Built once: these run once per message, and statement caches are keyed on the text.
_START = (
    "UPDATE deliveries SET state = 'sending', attempts = attempts + 1,"
    " first_attempt_at = COALESCE(first_attempt_at, ?), updated_at = ?"
    " WHERE " + _KEY + " AND claimed_by = ? AND state IN ('pending', 'deferred')"
    " AND NOT EXISTS (SELECT 1 FROM subscribers s"
    " WHERE s.email = deliveries.email_key AND " + _BLOCKED + ")"
)
_CANCEL_CLAIMED = (
    "UPDATE deliveries SET state = 'cancelled', last_error = 'blocked',"
    " claimed_by = NULL, updated_at = ?"
    " WHERE " + _KEY + " AND claimed_by = ? AND state IN ('pending', 'deferred')"
)
# A compose failure is recorded before any hand-over: the row is still only claimed.
_MINE = " WHERE " + _KEY + " AND claimed_by = ? AND state IN ('pending', 'deferred', 'sending')"
_SENT = (
    "UPDATE deliveries SET state = 'sent', last_code = NULL, last_error = NULL,"
    " claimed_by = NULL, updated_at = ?" + _MINE
)
# first_attempt_at: set here too for a delivery deferred before any hand-over (a host
# that could not compose it), so its retry lifetime runs from then.
_DEFERRED = (
    "UPDATE deliveries SET state = 'deferred', next_attempt_at = ?, last_code = ?,"
    " last_error = ?, claimed_by = NULL, updated_at = ?,"
    " first_attempt_at = COALESCE(first_attempt_at, ?)" + _MINE
)
_FAILED = (
    "UPDATE deliveries SET state = 'failed', last_code = ?, last_error = ?,"
    " claimed_by = NULL, updated_at = ?" + _MINE
)


_REPORT = (
    "SELECT d.edition_id, d.email, d.state, d.attempts, d.last_code, d.last_error,"
    " CASE WHEN d.state IN ('pending', 'deferred') THEN d.next_attempt_at END,"
    " d.updated_at, s.bounced_at IS NOT NULL"
    " FROM deliveries d LEFT JOIN subscribers s ON s.email = d.email_key"
)


def _report_filters(
    edition_id: int | None, state: str | None, address: str | None
) -> tuple[str, list[object]]:
    """The WHERE clause of ``deliveries`` and its parameters."""
    if state is not None and state not in DELIVERY_FILTERS:
        raise ValueError(f"unknown delivery state {state!r}")
    where: list[str] = []
    params: list[object] = []
    if edition_id is not None:
        where.append("d.edition_id = ?")
        params.append(edition_id)
    if state == "bounced":
        where.append("d.state = 'failed' AND s.bounced_at IS NOT NULL")
    elif state is not None:
        where.append("d.state = ?")
        params.append(state)
    if address is not None:  # the key, as everything is keyed: any spelling finds it
        where.append("d.email_key = ?")
        params.append(email_key(address))
    return (" WHERE " + " AND ".join(where)) if where else "", params


def _ids(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


class DeliveryStateMachine(SqlParts):
    """Claim → hand over → record."""

    if TYPE_CHECKING:  # sql_subscribers.SubscriberTables's

        def mark_bounced(self, email: str, at: datetime, reason: str) -> None: ...

    # Who holds a claim: unique per store object, so two senders (processes, or two
    # stores in one process) never mistake each other's claims for their own.
    claimant: str = ""

    def _new_claimant(self) -> None:
        self.claimant = uuid.uuid4().hex

    def claim(self, limit: int, now: datetime) -> Sequence[Delivery]:
        """Reserve up to ``limit`` due deliveries for this sender, committed on return.

        Deliveries of addresses blocked since planning are cancelled on the way and
        the search goes on, so a short batch always means "nothing more is due".
        """
        stamp, until = to_ts(now), to_ts(now + self.lease)
        claimed: list[Delivery] = []
        with self.transaction() as db:
            if self.shared:
                self._take_over(stamp)
            while len(claimed) < limit:
                rows = db.execute(
                    "SELECT d.email_key, d.edition_id, d.email, d.name, d.lang, d.statement_ids,"
                    " d.message_id, d.attempts, d.first_attempt_at, " + _BLOCKED + " AS blocked,"
                    " d.corrected_ids"
                    " FROM deliveries d LEFT JOIN subscribers s ON s.email = d.email_key"
                    " WHERE d.state IN ('pending', 'deferred') AND d.next_attempt_at <= ?"
                    # Another sender's lapsed claim may be taken; our own claims are
                    # in our queue already, however old.
                    " AND (d.claimed_by IS NULL OR (d.claim_until <= ? AND d.claimed_by <> ?))"
                    " ORDER BY d.next_attempt_at LIMIT ?" + self._claim_lock,
                    (stamp, stamp, self.claimant, limit - len(claimed)),
                ).fetchall()
                if not rows:
                    break
                claimed.extend(self._reserve(rows, stamp, until, now))
        return claimed

    def _take_over(self, stamp: str) -> None:
        """A dead sender's hand-overs: ``sending`` rows of another claimant whose lease
        lapsed go back to ``pending`` (same Message-ID; the attempt still counts).

        Only where senders share the ledger: a live sender renews its leases every
        third of the lease, so only a sender that stopped renewing (dead, or cut off
        from the database for longer than the lease) loses its rows.
        """
        self._db.execute(
            "UPDATE deliveries SET state = 'pending', claimed_by = NULL, claim_until = NULL"
            " WHERE (edition_id, email_key) IN (SELECT edition_id, email_key FROM deliveries"
            " WHERE state = 'sending' AND claim_until <= ? AND claimed_by <> ?"
            + self._claim_lock.replace(" OF d", "")
            + ")",
            (stamp, self.claimant),
        )

    def renew_claims(self, now: datetime) -> int:
        """Extend the lease of every delivery this sender holds; returns how many."""
        with self.transaction() as db:
            return int(
                db.execute(
                    "UPDATE deliveries SET claim_until = ? WHERE claimed_by = ?"
                    " AND state IN ('pending', 'deferred', 'sending')",
                    (to_ts(now + self.lease), self.claimant),
                ).rowcount
            )

    def _reserve(self, rows: list[Any], stamp: str, until: str, now: datetime) -> list[Delivery]:
        self._dialect.update_deliveries(
            self._db,
            "state = 'cancelled', last_error = 'blocked', claimed_by = NULL, updated_at = ?",
            (stamp,),
            [(r[0], int(r[1])) for r in rows if r[9]],
        )
        sendable = [r for r in rows if not r[9]]
        self._dialect.update_deliveries(
            self._db,
            "claimed_by = ?, claim_until = ?",
            (self.claimant, until),
            [(r[0], int(r[1])) for r in sendable],
        )
        bundles: dict[str, tuple[str, ...]] = {}  # few distinct digests: decode each once
        return [
            Delivery(
                edition_id=int(r[1]),
                email=r[2],
                name=r[3],
                lang=r[4],
                statement_ids=bundles.get(r[5]) or bundles.setdefault(r[5], _ids(r[5])),
                message_id=r[6],
                attempts=int(r[7]) + 1,
                first_attempt_at=from_ts(r[8]) if r[8] else now,
                corrected_ids=bundles.get(r[10]) or bundles.setdefault(r[10], _ids(r[10])),
            )
            for r in sendable
        ]

    def record(
        self, outcomes: Sequence[Outcome], start: Sequence[Delivery], now: datetime
    ) -> list[bool]:
        """Store ``outcomes``, then move ``start`` to ``sending``: one transaction.

        Returns, for each of ``start``, whether it may be handed to SMTP now: False
        when its address was unsubscribed or bounced since it was claimed (it is
        cancelled) or when this sender no longer holds the claim.
        """
        stamp = to_ts(now)
        keys = [(email_key(d.email), d.edition_id) for d in start]
        started = self._confirm(outcomes, keys, stamp, now)
        return self._cancel_refused(keys, [cursor.rowcount > 0 for cursor in started], stamp)

    def _confirm(
        self, outcomes: Sequence[Outcome], keys: list[tuple[str, int]], stamp: str, now: datetime
    ) -> list[Any]:
        """``record``'s one transaction; the cursors of the hand-overs, whose row counts
        say which were allowed."""
        with self._confirming():
            for outcome in outcomes:
                self._store_outcome(outcome, stamp, now)
            return [self._db.execute(_START, (stamp, stamp, *k, self.claimant)) for k in keys]

    def _confirming(self) -> AbstractContextManager[Any]:
        """The transaction ``record`` confirms in (PostgreSQL: an asynchronous commit)."""
        return self.transaction()

    def _cancel_refused(
        self, keys: list[tuple[str, int]], allowed: list[bool], stamp: str
    ) -> list[bool]:
        """Cancel the hand-overs refused (in a transaction of its own: a refused one was
        never handed over, so a crash between the two leaves it claimed, for its lease
        to free); returns ``allowed``."""
        refused = [key for key, ok in zip(keys, allowed, strict=True) if not ok]
        if refused:  # unsubscribed or bounced since the claim: never to be sent
            with self.transaction():
                for key in refused:
                    self._db.execute(_CANCEL_CLAIMED, (stamp, *key, self.claimant))
        return allowed

    def _store_outcome(self, outcome: Outcome, stamp: str, now: datetime) -> None:
        delivery = outcome.delivery
        key = (email_key(delivery.email), delivery.edition_id)
        if outcome.state == "sent":
            self._db.execute(_SENT, (stamp, *key, self.claimant))
        elif outcome.state == "deferred":
            retry = to_ts(outcome.next_attempt_at or now)
            deferred = (retry, outcome.code, outcome.error, stamp, stamp, *key, self.claimant)
            self._db.execute(_DEFERRED, deferred)
        elif outcome.state == "failed":
            failed = (outcome.code, outcome.error, stamp, *key, self.claimant)
            self._db.execute(_FAILED, failed)
            if outcome.bounced:
                reason = f"{outcome.code or ''} {outcome.error or ''}".strip()
                self.mark_bounced(delivery.email, now, reason)
        elif outcome.state == "released":
            self._unclaim([key], stamp)
        else:
            raise ValueError(f"unknown outcome {outcome.state!r}")

    def _unclaim(self, keys: list[tuple[str, int]], stamp: str) -> None:
        # Handed over and then not sent (the run could not send at all): the attempt
        # does not count, so nothing looks like an unknown outcome.
        self._db.executemany(
            "UPDATE deliveries SET"
            " state = CASE WHEN attempts > 1 THEN 'deferred' ELSE 'pending' END,"
            " first_attempt_at = CASE WHEN attempts > 1 THEN first_attempt_at END,"
            " attempts = attempts - 1, claimed_by = NULL, updated_at = ?"
            " WHERE " + _KEY + " AND claimed_by = ? AND state = 'sending'",
            [(stamp, *key, self.claimant) for key in keys],
        )
        self._db.executemany(
            "UPDATE deliveries SET claimed_by = NULL"
            " WHERE " + _KEY + " AND claimed_by = ? AND state IN ('pending', 'deferred')",
            [(*key, self.claimant) for key in keys],
        )

    # -- the single-step forms (tests, tools): each is one ``record`` ---------------

    def mark_sent(self, deliveries: Sequence[Delivery], now: datetime) -> None:
        self.record([Outcome(d, "sent") for d in deliveries], (), now)

    def mark_deferred(
        self,
        delivery: Delivery,
        now: datetime,
        next_attempt_at: datetime,
        code: int | None,
        error: str,
    ) -> None:
        self.record([Outcome(delivery, "deferred", code, error, next_attempt_at)], (), now)

    def mark_failed(
        self, delivery: Delivery, now: datetime, code: int | None, error: str, bounced: bool
    ) -> None:
        self.record([Outcome(delivery, "failed", code, error, bounced=bounced)], (), now)

    def release(self, deliveries: Sequence[Delivery], now: datetime) -> None:
        """Claimed deliveries that were never handed to SMTP (a stop): drop the claim."""
        keys = [(email_key(d.email), d.edition_id) for d in deliveries]
        with self.transaction():
            self._unclaim(keys, to_ts(now))

    def recover_unknown(self) -> int:
        """At the start of a run of the only sender: ``sending`` → ``pending``, claims dropped.

        ``sending`` rows were handed to SMTP by a sender that died before the reply
        was recorded: they go out again with the same Message-ID. Returns how many.
        """
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET claimed_by = NULL, claim_until = NULL"
                " WHERE claimed_by IS NOT NULL AND state IN ('pending', 'deferred')"
            )
            return int(
                db.execute(
                    "UPDATE deliveries SET state = 'pending', claimed_by = NULL,"
                    " claim_until = NULL WHERE state = 'sending'"
                ).rowcount
            )

    def counts(self, edition_id: int | None = None) -> LedgerCounts:
        if edition_id is None:
            rows = self._db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        else:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM deliveries WHERE edition_id = ? GROUP BY state",
                (edition_id,),
            )
        return LedgerCounts(**{state: int(n) for state, n in rows})

    def deliveries(
        self,
        edition_id: int | None = None,
        state: str | None = None,
        address: str | None = None,
        limit: int | None = None,
    ) -> Iterator[DeliveryRow]:
        """Deliveries by edition, then address, streamed from the cursor.

        A generator (``translated`` leaves it alone), so the errors are mapped here.
        """
        where, params = _report_filters(edition_id, state, address)
        sql = _REPORT + where + " ORDER BY d.edition_id, d.email_key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._map_errors("read deliveries"):
            for r in self._db.execute(sql, params):
                yield DeliveryRow(
                    edition_id=int(r[0]),
                    email=r[1],
                    state=r[2],
                    attempts=int(r[3]),
                    last_code=None if r[4] is None else int(r[4]),
                    last_error=r[5],
                    next_attempt_at=from_ts(r[6]) if r[6] else None,
                    updated_at=from_ts(r[7]),
                    address_bounced=bool(r[8]),
                )

    def next_attempt_at(self) -> datetime | None:
        """When the earliest open delivery is due: a claimed one when its lease ends.

        On a shared ledger a ``sending`` row counts too (when its lease ends, a dead
        sender's hand-over is taken over); a single sender recovers those at start.
        """
        states = "'pending', 'deferred', 'sending'" if self.shared else "'pending', 'deferred'"
        row = self._db.execute(
            "SELECT MIN(CASE WHEN claimed_by IS NULL THEN next_attempt_at"
            " WHEN claim_until > next_attempt_at THEN claim_until ELSE next_attempt_at END)"
            f" FROM deliveries WHERE state IN ({states})"
        ).fetchone()
        return None if row[0] is None else from_ts(row[0])
