"""The sending loop: claim due deliveries, hand them to a Messenger, record each outcome.

Crash safety comes from the order of writes (see ``ledger``): ``claim`` reserves
deliveries; each is marked ``sending`` in a committed transaction before its data
goes to SMTP (which also checks that its address is still subscribed; the envelope,
MAIL and RCPT, and DATA with PIPELINING, is opened meanwhile), and each reply is
committed within one turn of the event loop (``record.GroupCommit``), with or before
the worker's next hand-over.
So after a kill -9 the ledger's ``sending`` rows are at most the messages in flight,
one per connection (``smtp.concurrency``), as Postfix promises; ``recover_unknown``
queues them again with the same Message-ID. When the ledger cannot be written (disk
full, I/O error), no further message is handed over and the run ends with
:class:`StateError`.

On a ledger of its own (SQLite) ``deliver`` must be the only sender while it runs:
it starts with ``recover_unknown``, which would re-queue another live sender's
in-flight messages (unless called with ``recover=False`` by workers whose parent
recovered once). On a shared ledger (``ledger.shared``: PostgreSQL, several hosts)
it skips that: a dead sender's hand-overs are taken over by ``claim`` once their
lease lapsed, and a live sender renews its own leases every third of the lease.
Every deferral, failure and bounce is logged with the address, the reply and the
next attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import jinja2

from ..clock import Clock
from ..errors import (
    ConfigError,
    DeliveryError,
    DeliveryHalted,
    PermanentDeliveryError,
    RecipientRefusedError,
    StateError,
    TemporaryDeliveryError,
)
from ..logs import event
from ..state.api import Delivery, Ledger, Outcome
from .breaker import SAME_REFUSAL_LIMIT, RefusalStreak
from .claims import ClaimsAhead
from .mailer import Messenger
from .record import GroupCommit

__all__ = [
    "DeliverySummary",
    "Progress",
    "backoff",
    "deliver",
    "load_environment",
]

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for a live progress line."""

    sent: int
    total: int
    deferred: int
    failed: int


@dataclass(slots=True)
class DeliverySummary:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    recovered: int = 0  # deliveries a previous run left in an unknown state
    cancelled: int = 0  # claimed, then the address unsubscribed or bounced before hand-over
    total: int = 0
    stopped: bool = False  # ``stop`` was set before everything due was sent


def load_environment(templates: Path) -> jinja2.Environment:
    """The jinja2 Environment for ``digest.txt`` and ``digest.html``: the site's
    ``templates`` folder over the package's defaults."""
    from ..domain.digest import template_environment
    from ..template_files import template_loader

    return template_environment(template_loader(templates))


def backoff(attempts: int, email: str) -> timedelta:
    """1 min, 2, 4, ... up to 1 h, spread by ±20 % so retries do not arrive in a herd.

    The spread is derived from the address, not a random number, so a test (or a
    person reading ``status``) can predict the next attempt.
    """
    base = min(FIRST_RETRY * (1 << max(0, min(attempts - 1, 16))), LONGEST_RETRY)
    spread = int.from_bytes(hashlib.blake2b(email.lower().encode(), digest_size=2).digest())
    return base * (0.8 + 0.4 * spread / 0xFFFF)


async def deliver(
    ledger: Ledger,
    messenger: Messenger,
    compose: Callable[[Delivery], bytes],
    clock: Clock,
    *,
    sender: str | Callable[[Delivery], str],
    concurrency: int = 4,
    batch: int = 500,
    retry_lifetime: timedelta = timedelta(days=3),
    stop: asyncio.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    recover: bool = True,
    same_refusal_limit: int | None = SAME_REFUSAL_LIMIT,
) -> DeliverySummary:
    """Send everything due now; return when nothing more is due or ``stop`` is set.

    ``sender`` is the envelope sender (bounces go there), or a function giving each
    delivery its own (VERP, ``digests.envelope``). Raises ``ConfigError`` when
    the run cannot send at all (e.g. STARTTLS missing) and ``StateError`` when the
    ledger cannot be written; deliveries claimed but not handed to the server are
    released back to the ledger (when it can still be written).

    ``recover=False`` skips ``recover_unknown``: for several senders sharing one
    ledger (worker processes), whose parent recovered once before starting them.
    Claims are transactions, so such senders never share a delivery.

    Circuit breaker: when ``same_refusal_limit`` deliveries in a row fail permanently
    with the same reply code and enhanced status code (e.g. "554 5.7.1 relaying
    denied" for everyone: the SMTP settings are wrong, not the addresses), the run
    stops with ``DeliveryHalted`` instead of failing the whole list. The deliveries that
    already failed stay failed (``digest send --resend-failed`` queues them again);
    the rest are released. ``None`` turns the breaker off.
    """
    run = _Run(
        ledger,
        messenger=messenger,
        compose=compose,
        clock=clock,
        sender=sender,
        retry_lifetime=retry_lifetime,
        progress=progress,
        same_refusal_limit=same_refusal_limit,
        workers=max(1, concurrency),
    )
    renewing: asyncio.Task[None] | None = None
    try:  # from here on the run holds a ledger writer (a connection): finish closes it
        if recover and not ledger.shared:
            run.summary.recovered = ledger.recover_unknown()
        counts = ledger.counts()
        run.summary.total = counts.pending + counts.deferred
        run.batch, run.stop = batch, stop or asyncio.Event()
        renewing = asyncio.create_task(run.renew_leases()) if ledger.shared else None
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, concurrency)):
                group.create_task(run.worker())
    finally:
        if renewing is not None:
            renewing.cancel()
        await run.finish()
    if run.fatal is not None:
        raise run.fatal
    run.summary.stopped = run.stop.is_set() and not run.exhausted
    return run.summary


class _Run:
    """State of one ``deliver`` call, shared by its workers (one event loop, no locks)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        messenger: Messenger,
        compose: Callable[[Delivery], bytes],
        clock: Clock,
        sender: str | Callable[[Delivery], str],
        retry_lifetime: timedelta,
        progress: Callable[[Progress], None] | None,
        same_refusal_limit: int | None = None,
        workers: int = 1,
    ) -> None:
        self.ledger = ledger
        self.messenger = messenger
        self.compose = compose
        self.clock = clock
        self.sender = sender
        self.retry_lifetime = retry_lifetime
        self.progress = progress
        self.summary = DeliverySummary()
        self.claimed: deque[Delivery] = deque()
        self.claims = ClaimsAhead(ledger)  # a shared ledger's, once half a batch is out
        self.ahead: asyncio.Task[None] | None = None
        self.records = GroupCommit(ledger, clock, workers=workers)
        self.exhausted = False
        self.fatal: ConfigError | DeliveryHalted | StateError | None = None
        self.batch = 500
        self.stop = asyncio.Event()
        self.streak = RefusalStreak(same_refusal_limit)  # the circuit breaker

    async def _next(self) -> Delivery | None:
        if not self.claimed and self.ahead is not None:
            await asyncio.wait([self.ahead])  # the next batch is on its way
        if not self.claimed and not self.exhausted and self.fatal is None:
            # Keep the ledger's view fresh (and no write in flight) before the claim.
            await self.records.drain()
            if self.claimed or self.exhausted:  # another worker claimed meanwhile
                return self.claimed.popleft() if self.claimed else None
            # Claiming is synchronous, so two workers can never claim at once.
            taken = self.ledger.claim(self.batch, self.clock())
            self.claimed.extend(taken)
            self.exhausted = len(taken) < self.batch  # a short batch: nothing more is due
        self._claim_ahead()
        return self.claimed.popleft() if self.claimed else None

    def _claim_ahead(self) -> None:
        if not self.ledger.shared or self.ahead is not None or self.exhausted:
            return
        if len(self.claimed) > self.batch // 2 or self.stop.is_set() or self.fatal:
            return
        self.ahead = asyncio.get_running_loop().create_task(self._claim_next())

    async def _claim_next(self) -> None:
        """The next batch, claimed in a thread: the claimer's connection is its own, and
        a claim takes only rows nobody holds, so the writes of this sender's own rows
        meanwhile (on the other connections) cannot meet it."""
        try:  # cancelled (the loop closing): what it claims lapses with the lease
            taken = await asyncio.to_thread(self.claims.claim, self.batch, self.clock())
        except StateError as exc:
            self.fatal = self.fatal or exc
            return
        finally:
            self.ahead = None
        self.claimed.extend(taken)
        self.exhausted = len(taken) < self.batch

    async def worker(self) -> None:
        while not self.stop.is_set() and self.fatal is None:
            try:
                delivery = await self._next()
            except StateError as exc:
                self.fatal = self.fatal or exc
                return
            if delivery is None:
                return
            await self._handle(delivery)

    async def renew_leases(self) -> None:
        """A shared ledger: keep this sender's claims alive (a third of the lease apart,
        so two renewals may fail before another host takes them over)."""
        period = self.ledger.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            await self.records.drain()  # the store serves one thread at a time
            try:
                self.ledger.renew_claims(self.clock())
            except StateError as exc:  # the workers stop at their next transaction
                log.warning("cannot renew the delivery leases: %s", exc)

    async def finish(self) -> None:
        """At the end of the run: record what is left, release what was never handed over."""
        try:
            if self.ahead is not None:  # its claims are released with the rest below
                await asyncio.wait([self.ahead])
            await self._finish()
        finally:
            self.claims.close()

    async def _finish(self) -> None:
        try:
            await self.records.drain()
        finally:
            self.records.close()
        if self.records.unrecorded:
            log.error(
                "%d outcomes could not be recorded: those messages will be sent again "
                "(with the same Message-ID) when the ledger can be written",
                self.records.unrecorded,
            )
        if self.records.error is not None:
            self.fatal = self.fatal or self.records.error
        if self.claimed:  # stopped (or unable to send): these never left, so drop the claim
            try:
                self.ledger.release(list(self.claimed), self.clock())
            except StateError as exc:  # the claims lapse with their lease instead
                self.fatal = self.fatal or exc
            self.claimed.clear()

    async def _handle(self, delivery: Delivery) -> None:
        try:
            message = self.compose(delivery)
        except (KeyError, ValueError) as exc:  # e.g. a statement no longer known
            if self.ledger.shared:  # another host may have it (statements come by git pull)
                error = TemporaryDeliveryError(f"cannot compose here: {exc}")
                self._retry_later(delivery, error)
            else:
                self._failed(delivery, None, f"cannot compose: {exc}", bounced=False)
            return
        try:
            handover = self.records.hand_over(delivery)  # committed while the envelope goes out
            failure = await self._send(delivery, message, handover)
            may_send = await handover
        except StateError as exc:  # nothing may leave that cannot be recorded
            self.claimed.appendleft(delivery)
            self.fatal = self.fatal or exc
            return
        if not may_send:
            self.summary.cancelled += 1
            event(log, logging.INFO, "delivery cancelled", to=delivery.email, reason="blocked")
            return
        self._record(delivery, failure)
        self._report()

    async def _send(
        self, delivery: Delivery, message: bytes, handover: asyncio.Future[bool]
    ) -> ConfigError | DeliveryError | None:
        """Send once the hand-over is committed; the error, recorded after the hand-over."""
        try:
            sender = self.sender if isinstance(self.sender, str) else self.sender(delivery)
            await self.messenger.send(sender, delivery.email, message, handover)
        except (ConfigError, DeliveryError) as exc:
            return exc
        return None

    def _record(self, delivery: Delivery, failure: ConfigError | DeliveryError | None) -> None:
        if isinstance(failure, ConfigError):
            # Nothing was sent: the hand-over is undone when this turn is recorded.
            self.records.add(Outcome(delivery, "released"))
            self.fatal = self.fatal or failure
        elif isinstance(failure, PermanentDeliveryError | RecipientRefusedError):
            bounced = isinstance(failure, RecipientRefusedError)
            self._failed(delivery, failure.code, str(failure), bounced=bounced)
            if self.fatal is None:  # already stopping: no second verdict
                self.fatal = self.streak.refused(delivery.email, failure, bounced=bounced)
        elif failure is not None:  # temporary, and any future kind: retry
            self._retry_later(delivery, failure)
            self.streak.end()
        else:
            self.records.add(Outcome(delivery, "sent"))
            self.summary.sent += 1
            self.streak.end()

    def _failed(self, delivery: Delivery, code: int | None, error: str, *, bounced: bool) -> None:
        self.records.add(Outcome(delivery, "failed", code, error, bounced=bounced))
        self.summary.failed += 1
        self.summary.bounced += bounced
        event(
            log,
            logging.WARNING,
            "delivery bounced" if bounced else "delivery failed",
            to=delivery.email,
            edition=delivery.edition_id,
            code=code if code is not None else "",
            reply=error,
            attempts=delivery.attempts,
            next_attempt="never",
        )

    def _retry_later(self, delivery: Delivery, exc: DeliveryError) -> None:
        now = self.clock()
        deadline = (delivery.first_attempt_at or now) + self.retry_lifetime
        if now >= deadline:
            error = f"gave up after {delivery.attempts} attempts: {exc}"
            self._failed(delivery, exc.code, error, bounced=False)
            return
        # The last try is made at the deadline rather than skipped.
        next_attempt = min(now + backoff(delivery.attempts, delivery.email), deadline)
        self.records.add(Outcome(delivery, "deferred", exc.code, str(exc), next_attempt))
        self.summary.deferred += 1
        event(
            log,
            logging.WARNING,
            "delivery deferred",
            to=delivery.email,
            edition=delivery.edition_id,
            code=exc.code if exc.code is not None else "",
            reply=str(exc),
            attempts=delivery.attempts,
            next_attempt=next_attempt,
        )

    def _report(self) -> None:
        if self.progress is not None:
            s = self.summary
            self.progress(Progress(s.sent, s.total, s.deferred, s.failed))
