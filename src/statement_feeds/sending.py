"""The sending loop: claim due deliveries, hand them to a Messenger, record each outcome.

Crash safety comes from the order of writes (see ``ledger``): ``claim`` commits
before anything goes out, so after a kill -9 the ledger knows which messages may
have left (``sending``) and ``recover_unknown`` queues them again with the same
Message-ID. Successes are confirmed in batches (``mark_sent`` every 250 messages
or half a second) because one transaction per message would cap the rate at the
disk's fsync rate; the price is that a crash can re-send up to one batch of
already-accepted messages, which is exactly the "outcome unknown" window.

``deliver`` must be the only sender on its ledger while it runs: it starts with
``recover_unknown``, which would re-queue another live sender's in-flight messages
(unless called with ``recover=False`` by workers whose parent recovered once).
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

from .adapters.mailer import Messenger
from .clock import Clock
from .errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    RecipientRefusedError,
)
from .ledger import Delivery, Ledger

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
    total: int = 0
    stopped: bool = False  # ``stop`` was set before everything due was sent


def load_environment(templates: Path) -> jinja2.Environment:
    """The jinja2 Environment for ``templates/digest.txt`` and ``digest.html``."""
    from .core.digest import template_environment

    return template_environment(jinja2.FileSystemLoader(str(templates)))


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
    sender: str,
    concurrency: int = 4,
    batch: int = 500,
    retry_lifetime: timedelta = timedelta(days=3),
    stop: asyncio.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    flush_every: int = 250,
    flush_interval: float = 0.5,
    recover: bool = True,
) -> DeliverySummary:
    """Send everything due now; return when nothing more is due or ``stop`` is set.

    ``sender`` is the envelope sender (bounces go there). Raises ``ConfigError`` when
    the run cannot send at all (e.g. STARTTLS missing). Deliveries claimed but not
    handed to the server (that error, or ``stop``) are released back to the ledger.

    ``recover=False`` skips ``recover_unknown``: for several senders sharing one
    ledger (worker processes), whose parent recovered once before starting them.
    Claims are transactions, so such senders never share a delivery.
    """
    run = _Run(
        ledger,
        messenger=messenger,
        compose=compose,
        clock=clock,
        sender=sender,
        retry_lifetime=retry_lifetime,
        progress=progress,
    )
    if recover:
        run.summary.recovered = ledger.recover_unknown()
    counts = ledger.counts()
    run.summary.total = counts.pending + counts.deferred
    run.batch, run.flush_every, run.stop = batch, flush_every, stop or asyncio.Event()
    ticker = asyncio.create_task(run.tick(flush_interval))
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, concurrency)):
                group.create_task(run.worker())
    finally:
        ticker.cancel()
        run.flush()
        if run.claimed:  # stopped (or unable to send): these never left, so undo the claim
            ledger.release(list(run.claimed), clock())
            run.claimed.clear()
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
        sender: str,
        retry_lifetime: timedelta,
        progress: Callable[[Progress], None] | None,
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
        self.unconfirmed: list[Delivery] = []
        self.exhausted = False
        self.fatal: ConfigError | None = None
        self.batch = 500
        self.flush_every = 250
        self.stop = asyncio.Event()

    def _next(self) -> Delivery | None:
        # Claiming is synchronous, so two workers can never claim at once.
        if not self.claimed and not self.exhausted:
            self.flush()  # keep the ledger's view fresh before the next transaction
            taken = self.ledger.claim(self.batch, self.clock())
            self.claimed.extend(taken)
            self.exhausted = len(taken) < self.batch  # a short batch: nothing more is due
        return self.claimed.popleft() if self.claimed else None

    async def worker(self) -> None:
        while not self.stop.is_set() and self.fatal is None:
            delivery = self._next()
            if delivery is None:
                return
            await self._handle(delivery)

    async def tick(self, interval: float) -> None:
        """Confirm accepted messages at least every ``interval`` even if sending stalls."""
        while True:
            await asyncio.sleep(interval)
            self.flush()

    def flush(self) -> None:
        if self.unconfirmed:
            batch, self.unconfirmed = self.unconfirmed, []
            self.ledger.mark_sent(batch, self.clock())

    async def _handle(self, delivery: Delivery) -> None:
        try:
            message = self.compose(delivery)
        except (KeyError, ValueError) as exc:  # e.g. a statement no longer known
            log.error("cannot compose the digest for %s: %s", delivery.email, exc)
            self._failed(delivery, None, f"cannot compose: {exc}", bounced=False)
            return
        try:
            await self.messenger.send(self.sender, delivery.email, message)
        except ConfigError as exc:
            # Nothing was sent: back with the claimed ones, released when the run ends.
            self.claimed.appendleft(delivery)
            self.fatal = self.fatal or exc
            return
        except RecipientRefusedError as exc:
            self._failed(delivery, exc.code, str(exc), bounced=True)
        except PermanentDeliveryError as exc:
            self._failed(delivery, exc.code, str(exc), bounced=False)
        except DeliveryError as exc:  # temporary, and any future kind: retry
            self._retry_later(delivery, exc)
        else:
            self._sent(delivery)
        self._report()

    def _sent(self, delivery: Delivery) -> None:
        self.unconfirmed.append(delivery)
        self.summary.sent += 1
        if len(self.unconfirmed) >= self.flush_every:
            self.flush()

    def _failed(self, delivery: Delivery, code: int | None, error: str, *, bounced: bool) -> None:
        self.ledger.mark_failed(delivery, self.clock(), code, error, bounced)
        self.summary.failed += 1
        self.summary.bounced += bounced

    def _retry_later(self, delivery: Delivery, exc: DeliveryError) -> None:
        now = self.clock()
        deadline = (delivery.first_attempt_at or now) + self.retry_lifetime
        if now >= deadline:
            error = f"gave up after {delivery.attempts} attempts: {exc}"
            self._failed(delivery, exc.code, error, bounced=False)
            return
        # The last try is made at the deadline rather than skipped.
        next_attempt = min(now + backoff(delivery.attempts, delivery.email), deadline)
        self.ledger.mark_deferred(delivery, now, next_attempt, exc.code, str(exc))
        self.summary.deferred += 1

    def _report(self) -> None:
        if self.progress is not None:
            s = self.summary
            self.progress(Progress(s.sent, s.total, s.deferred, s.failed))
