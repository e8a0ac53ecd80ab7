"""The state store's interface: what the rest of the program needs from it, by concern.

* :class:`Ledger`: editions and the delivery state machine (planning and sending);
* :class:`SubscriberStore`: what the state knows about addresses beyond the CSV files
  (join times, unsubscribes and bounces, translation keys assigned, sightings);
* :class:`WebSignups`: the web side's sign-ups, confirmations, web subscribers,
  preference overrides, rate limits and subscriber ids;
* :class:`StoreMetrics`: counts for ``digest status``, /metrics and /health;
* :class:`Store`: all of them, plus ``close`` and use as a context manager.

``state.sqlite.SqliteStore`` and ``state.postgres.PostgresStore`` implement them with
shared SQL (the ``sql_*`` mixins), and ``state.open.open_store`` picks one. Nothing
outside ``state/`` names a backend. The sending pipeline depends only on
:class:`Ledger` and ``digests.mailer.Messenger``.

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
    sending ──claim, lease lapsed──▶ pending   a shared ledger (``shared``): another
                                           sender's hand-overs whose lease lapsed
                                           (it stopped renewing: dead); never a live
                                           sender's, whose leases are renewed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import NamedTuple, Protocol, runtime_checkable

from ..domain.corrections import Correction, Mailed
from ..domain.duplicates import SeenAddresses, Sightings
from ..domain.subscribers import Subscriber
from ..domain.web_subscribers import Preferences
from .delivery_states import DELIVERY_FILTERS, DELIVERY_STATES

__all__ = [
    "DELIVERY_FILTERS",
    "DELIVERY_STATES",
    "Claimer",
    "Delivery",
    "DeliveryRow",
    "Edition",
    "EditionStatus",
    "Ledger",
    "LedgerCounts",
    "LoopWriter",
    "Outcome",
    "PlannedDelivery",
    "Store",
    "StoreMetrics",
    "SubscriberState",
    "SubscriberStore",
    "WebSignups",
]


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One subscriber's part of an edition, decided at planning time."""

    email: str
    name: str
    lang: str  # language of the message's labels: the subscriber's first language
    statement_ids: tuple[str, ...]  # chosen versions (Statement.id), newest first
    translation_keys: tuple[str, ...]  # same order; what "sent once ever" is keyed on
    # Same order: each version's ``updated`` value, recorded as what was mailed (empty:
    # not known, the edition's planning time stands in for it).
    updated: tuple[datetime, ...] = ()
    # Statements mailed before and corrected since, mailed again (domain/corrections).
    corrections: tuple[Correction, ...] = ()


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
    corrected_ids: tuple[str, ...] = ()  # statements mailed again as corrected


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
class DeliveryRow:
    """One delivery as the ledger holds it, for reports (``statement-feeds deliveries``)."""

    edition_id: int
    email: str
    state: str  # one of DELIVERY_STATES
    attempts: int
    last_code: int | None  # the last SMTP reply code, when there was a reply
    last_error: str | None  # the last reply or error text
    next_attempt_at: datetime | None  # pending / deferred only: when it is due
    updated_at: datetime
    address_bounced: bool  # the address is marked bounced (nothing more goes to it)


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


@dataclass(frozen=True, slots=True)
class EditionStatus:
    edition: Edition
    counts: LedgerCounts


class SubscriberState(NamedTuple):
    """What planning needs to know about one address."""

    joined_at: datetime
    blocked: bool
    assigned: frozenset[str]  # translation keys already given to them (among those asked)
    # What was mailed of the keys asked for corrections (by translation key).
    mailed: Mapping[str, Mailed] = MappingProxyType({})


class LoopWriter(Protocol):
    """``Ledger.record`` made from a sender's event loop, where a write is a network
    round trip (PostgreSQL); the caller runs one write at a time."""

    async def record(
        self, outcomes: Sequence[Outcome], start: Sequence[Delivery], now: datetime
    ) -> list[bool]: ...

    def close(self) -> None: ...


class Claimer(Protocol):
    """``Ledger.claim`` on a connection of its own, for one thread at a time."""

    def claim(self, limit: int, now: datetime) -> Sequence[Delivery]: ...

    def close(self) -> None: ...


class Ledger(Protocol):
    # False: one sender per ledger (SQLite), which recovers ``sending`` rows at start.
    # True: senders on several hosts share it (PostgreSQL); each renews its leases
    # and takes over only ``sending`` rows whose lease lapsed (a dead sender's).
    shared: bool
    lease: timedelta  # how long a claim holds without renewal

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

    def loop_writer(self) -> LoopWriter | None:
        """A writer for a sender's event loop, or None: call ``record`` in the loop
        (SQLite: a commit is tens of microseconds)."""

    def claimer(self) -> Claimer | None:
        """Claims as this sender on a connection of their own, to be made in a thread
        while the sender's loop goes on (PostgreSQL), or None: claim in the loop
        (SQLite). Closed by the caller."""

    def renew_claims(self, now: datetime) -> int:
        """Extend the lease of everything this sender holds (a shared ledger's senders
        call it every third of the lease); returns how many deliveries."""

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

    def retry_failed(self, edition_id: int | None = None, now: datetime | None = None) -> int:
        """``failed`` → ``pending`` (not for bounced or unsubscribed addresses)."""

    def counts(self, edition_id: int | None = None) -> LedgerCounts: ...

    def deliveries(
        self,
        edition_id: int | None = None,
        state: str | None = None,
        address: str | None = None,
        limit: int | None = None,
    ) -> Iterator[DeliveryRow]:
        """Deliveries by edition, then address, streamed; ``state`` is one of
        DELIVERY_FILTERS, ``address`` any spelling of an address (its email key)."""

    def next_attempt_at(self) -> datetime | None:
        """When the earliest deferred delivery is due (for the daemon's timer)."""

    def history_start(self) -> datetime | None:
        """The earliest subscriber join or edition plan; None while there is neither.

        Before it no edition was ever due for this state: the daemon's catch-up does not
        report those as missed (a fresh state folder would warn of last week's).
        """


class SubscriberStore(Protocol):
    """Addresses as the state knows them; always keyed by ``domain.subscribers.email_key``.

    Only what the program calls: hard bounces are recorded by ``Ledger.record``, and
    ``SqliteStore``'s ``joined_at``, ``assigned_keys`` and ``is_blocked`` serve its tests.
    """

    def sync_subscribers(self, emails: Iterable[str], now: datetime) -> None:
        """Record ``now`` as the join time of every address not seen before.

        One transaction: ``emails`` may be a generator that uses this store (the
        sightings it records and its seen addresses join the same transaction).
        """

    def seen_addresses(self) -> AbstractContextManager[SeenAddresses]:
        """A fresh, empty :class:`SeenAddresses` for one read of the lists, dropped on exit."""

    def sightings(self, now: datetime, *, record: bool = True) -> Sightings:
        """When each address was first seen in each file (``record=False``: only read)."""

    def subscriber_states(
        self,
        emails: Sequence[str],
        translation_keys: Collection[str],
        corrected_keys: Collection[str] = (),
    ) -> dict[str, SubscriberState]:
        """Join time, blocked flag and assigned keys of the known ones, by email key;
        with what was mailed of ``corrected_keys`` (deliveries not failed or cancelled)."""

    def ever_assigned(self, translation_keys: Collection[str]) -> frozenset[str]:
        """Those of ``translation_keys`` ever assigned to any address (the others are in
        nobody's history: ``subscriber_states`` need not be asked about them)."""

    def subscriber_status(self, emails: Sequence[str]) -> dict[str, tuple[datetime, str]]:
        """email key → (joined_at, "active" | "unsubscribed" | "bounced") for known ones."""

    def unsubscribe(self, email: str, at: datetime) -> bool:
        """Block ``email`` from now on (its pending deliveries are cancelled); False if it was."""

    def clear_bounce(self, email: str) -> bool:
        """An admin says the address works again; True if a bounce was cleared."""


class WebSignups(Protocol):
    """The web side's records: sign-ups, preferences, rate limits, subscriber ids."""

    def add_confirmation(
        self, token_id: str, address: str, prefs: Preferences, now: datetime, expires: datetime
    ) -> None:
        """Record a sign-up waiting for its confirmation link."""

    def confirm_subscription(self, token_id: str, now: datetime) -> Subscriber | None:
        """Use a pending sign-up once (None: unknown, expired or used)."""

    def web_subscribers(self, *, include_blocked: bool = False) -> dict[str, Subscriber]:
        """Confirmed web subscribers by email key."""

    def preference_overrides(self) -> dict[str, Preferences]:
        """Languages and frequency chosen on the preferences page by CSV subscribers."""

    def web_subscriber_view(self) -> tuple[dict[str, Subscriber], dict[str, Preferences]]:
        """What planning merges into the CSV list: active web subscribers, overrides."""

    def preferences_for(self, email: str) -> Preferences | None: ...

    def set_preferences(self, email: str, prefs: Preferences, now: datetime) -> None: ...

    def hit_rate_limit(self, bucket: str, now: datetime, window: timedelta, limit: int) -> bool:
        """Count one action in ``bucket``; True (and not counted) if ``limit`` is reached."""

    def subscriber_id_key(self) -> bytes:
        """The key of the opaque subscriber ids in links (never rotated)."""

    def signing_keys(self) -> list[bytes]:
        """The HMAC keys of Message-IDs and tokens, newest first: the environment's
        (``$STATEMENT_FEEDS_SECRET_KEY``) when set, else the state's own (SQLite: the
        ``secret.key`` file; PostgreSQL: the ``secrets`` table, shared by all hosts)."""

    def remember_address_id(self, email: str) -> None: ...

    def address_for_id(self, sid: str) -> str | None:
        """The email key behind a subscriber id from a link, if the store knows it."""


class StoreMetrics(Protocol):
    """Counts for ``digest status``, /metrics and /health."""

    def editions(self, limit: int = 20) -> list[EditionStatus]:
        """The latest editions, newest due time first, with per-state delivery counts."""

    def edition_count(self) -> int: ...

    def subscriber_totals(self) -> dict[str, int]:
        """Addresses known, unsubscribed, bounced; web subscribers; preference overrides."""


@runtime_checkable
class Store(Ledger, SubscriberStore, WebSignups, StoreMetrics, Protocol):
    """The whole state store (``state.open.open_store``); close it, or use ``with``."""

    def close(self) -> None: ...

    def __enter__(self) -> Store: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
