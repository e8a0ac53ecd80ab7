"""The delivery ledger's interface: what planning and sending need from the state store.

``adapters.store.SqliteStore`` implements it (PostgreSQL later, same SQL). The
sending pipeline depends only on :class:`Ledger` and ``adapters.mailer.Messenger``.

A delivery moves through these states (``claim`` commits *before* the message is
handed to SMTP, ``mark_*`` commits after the reply)::

    pending ──claim──▶ sending ──250──▶ sent
       ▲                  │ 4xx / dropped / timeout, within digest.retry_lifetime
       │                  ▼
       │               deferred ──claim (at next_attempt_at)──▶ sending
       │
       │               sending ──5xx, or a temporary failure past the lifetime──▶ failed
       │                         (a 5xx refusing the mailbox also marks the address bounced)
       └── retry_failed ── failed   (not for bounced or unsubscribed addresses)

    pending / deferred ──unsubscribe, bounce, or blocked at claim time──▶ cancelled
    sending ──recover_unknown──▶ pending   at the start of every run: left by a crash,
                                           so re-sent with the same Message-ID
    sending ──release──▶ pending / deferred   a clean stop: claimed, never handed over
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["DELIVERY_STATES", "Delivery", "Edition", "Ledger", "LedgerCounts", "PlannedDelivery"]

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
        """Move up to ``limit`` due pending/deferred deliveries to ``sending`` and commit."""

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
        """Claimed deliveries that were never handed to SMTP (a stop): undo the claim."""

    def recover_unknown(self) -> int:
        """After a crash: deliveries left in ``sending`` go back to ``pending``."""

    def retry_failed(self, edition_id: int | None = None) -> int:
        """``failed`` → ``pending`` (not for bounced or unsubscribed addresses)."""

    def counts(self, edition_id: int | None = None) -> LedgerCounts: ...

    def next_attempt_at(self) -> datetime | None:
        """When the earliest deferred delivery is due (for the daemon's timer)."""
