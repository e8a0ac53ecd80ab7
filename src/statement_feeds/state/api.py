"""The delivery ledger's interface: what planning and sending need from the state store.

``adapters.store.SqliteStore`` implements it (PostgreSQL later, same SQL). The
sending pipeline depends only on :class:`Ledger` and ``adapters.mailer.Messenger``.

A delivery moves through these states. ``claim`` only reserves (``claimed_by`` and
a lease; the state does not change), ``record(start=...)`` commits ``sending`` right
before the message is handed to SMTP, and the reply is committed within one turn of
the sender's event loop, together with the next hand-overs::

    pending ──claim──▶ (claimed) ──start──▶ sending ──250──▶ sent
       ▲                  │                    │ 4xx / dropped / timeout, within
       │                  │ release / stop     ▼ digest.retry_lifetime
       │                  ▼                 deferred ──claim (at next_attempt_at)──▶ …
       │               pending / deferred
       │                                    sending ──5xx, or a temporary failure past
       │                                              the lifetime──▶ failed
       │                                              (a 5xx refusing the mailbox also
       │                                              marks the address bounced)
       └── retry_failed ── failed   (not for bounced or unsubscribed addresses)

    pending / deferred (claimed or not) ──unsubscribe, bounce; or blocked at claim or
                                          at start──▶ cancelled
    sending ──recover_unknown──▶ pending   at the start of every run of the only sender:
                                           handed over by a sender that died before its
                                           reply was recorded, so re-sent with the same
                                           Message-ID. At most the messages in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "DELIVERY_STATES",
    "Delivery",
    "Edition",
    "Ledger",
    "LedgerCounts",
    "Outcome",
    "PlannedDelivery",
]

DELIVERY_STATES = ("pending", "sending", "sent", "deferred", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One subscriber's part of an edition, decided at planning time."""

    email: str
    name: str
    lang: str  # language of the message's labels: the subscriber's first language
    statement_ids: tuple[str, ...]  # chosen versions (Statement.id), newest first
    translation_keys: tuple[str, ...]  # same order; what "sent once ever" is keyed on


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed delivery: everything needed to (re)build and send its message."""

    edition_id: int
    email: str
    name: str
    lang: str
    statement_ids: tuple[str, ...]
    message_id: str
    attempts: int  # including the one being made now
    first_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed delivery, to be recorded."""

    delivery: Delivery
    state: str  # "sent" | "deferred" | "failed" | "released" (never handed over after all)
    code: int | None = None  # the SMTP reply code, when there was a reply
    error: str | None = None  # the reply or error text
    next_attempt_at: datetime | None = None  # deferred: when to try again
    bounced: bool = False  # failed: the server refused the mailbox (a hard bounce)


@dataclass(frozen=True, slots=True)
class Edition:
    id: int
    frequency: str  # "daily" | "weekly" | "manual"
    due_at: datetime
    planned_at: datetime
    deliveries: int


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    pending: int = 0
    sending: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    cancelled: int = 0


class Ledger(Protocol):
    def edition_for(self, frequency: str, due_at: datetime) -> Edition | None:
        """The edition planned for this due time, if any: never two for one due time."""

    def plan_edition(
        self,
        frequency: str,
        due_at: datetime,
        planned_at: datetime,
        deliveries: Iterable[PlannedDelivery],
        message_id_for: object,  # Callable[[int, str], str]: (edition_id, email) → Message-ID
    ) -> Edition:
        """Record a whole edition in one transaction (idempotent per frequency + due_at)."""

    def claim(self, limit: int, now: datetime) -> Sequence[Delivery]:
        """Reserve up to ``limit`` due pending/deferred deliveries for this sender; commit."""

    def record(
        self, outcomes: Sequence[Outcome], start: Sequence[Delivery], now: datetime
    ) -> list[bool]:
        """In one transaction: store ``outcomes``, then move ``start`` to ``sending``.

        Returns for each of ``start`` whether it may be handed to SMTP (False: its
        address was unsubscribed or bounced since the claim, and it is cancelled).
        """

    def mark_sent(self, deliveries: Sequence[Delivery], now: datetime) -> None: ...

    def mark_deferred(
        self,
        delivery: Delivery,
        now: datetime,
        next_attempt_at: datetime,
        code: int | None,
        error: str,
    ) -> None: ...

    def mark_failed(
        self, delivery: Delivery, now: datetime, code: int | None, error: str, bounced: bool
    ) -> None: ...

    def release(self, deliveries: Sequence[Delivery], now: datetime) -> None:
        """Claimed deliveries that were never handed to SMTP (a stop): drop the claim."""

    def recover_unknown(self) -> int:
        """At the start of the only sender's run: ``sending`` → ``pending``, claims dropped."""

    def retry_failed(self, edition_id: int | None = None) -> int:
        """``failed`` → ``pending`` (not for bounced or unsubscribed addresses)."""

    def counts(self, edition_id: int | None = None) -> LedgerCounts: ...

    def next_attempt_at(self) -> datetime | None:
        """When the earliest deferred delivery is due (for the daemon's timer)."""
