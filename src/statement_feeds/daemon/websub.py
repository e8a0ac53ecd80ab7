"""WebSub publish pings (W3C WebSub §7): tell each hub of ``feeds.websub_hubs`` that a
feed changed, so that it pushes the new version to its subscribers within seconds.

After a build that wrote a document's bytes, the daemon queues one ping per hub and
per changed document (its ``self`` URL, the WebSub topic) and sends them in a task of
its own: a ping never delays or fails a build. Each ping is one form-encoded POST::

    hub.mode=publish&hub.topic=<self URL>&hub.url=<self URL>

``hub.topic`` as the WebSub Recommendation names it, ``hub.url`` as PubSubHubbub 0.4
hubs (Google's among them) read it. Outcomes:

* 2xx: done.
* 5xx, 408, 429, a timeout or a connection error: tried again after 30 s, then
  doubling up to 1 h between tries; given up after :data:`MAX_ATTEMPTS` tries (about
  2 hours). A ping queued again for a topic already waiting keeps its place: the hub
  fetches the feed as it is when it gets through.
* any other answer (4xx, 3xx): the hub refused this request and would refuse it again
  (a wrong hub URL, a topic it does not serve): given up at once, logged, counted.

Every outcome is recorded per hub (``feeds.hub_record``, ``<state>/websub.json``):
``status`` and ``/metrics`` show it, and pings still queued survive a restart. Time
comes from the daemon's clock (a fake one in tests): retries are timers armed at
clock times, never sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from ..clock import Clock
from ..config import Config
from ..feeds.hub_record import HubRecord, Pending, load_records, save_records
from ..logs import event
from .timers import Tasks, Timers

__all__ = [
    "FIRST_RETRY",
    "LONGEST_RETRY",
    "MAX_ATTEMPTS",
    "TIMEOUT",
    "Outcome",
    "Pinger",
    "WebSub",
    "retry_delay",
]

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
MAX_ATTEMPTS = 9  # pauses 30 s, 1, 2, 4, 8, 16, 32 min, 1 h: given up about 2 h after the first
TIMEOUT = 10.0  # seconds for one ping, connecting included
_RETRIED = frozenset({408, 429})  # 4xx answers that mean "not now" rather than "no"


def retry_delay(attempts: int) -> timedelta:
    """The pause after the ``attempts``-th failed try (1-based)."""
    pause: timedelta = FIRST_RETRY * 2 ** max(0, attempts - 1)
    return min(pause, LONGEST_RETRY)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "204", "503", "timeout", "error: ..."
    ok: bool
    retry: bool  # a failure worth trying again


class Pinger:
    """The ping queue of a set of hubs, its record on disk, and one run of due pings."""

    def __init__(
        self, hubs: Sequence[str], state: Path, clock: Clock, *, timeout: float = TIMEOUT
    ) -> None:
        self.state = state
        self.clock = clock
        self.timeout = timeout
        self.records: dict[str, HubRecord] = load_records(state, hubs)
        self._lock = asyncio.Lock()

    @property
    def hubs(self) -> list[str]:
        return list(self.records)

    def set_hubs(self, hubs: Sequence[str]) -> None:
        """A reloaded configuration: keep the records of hubs still listed."""
        if list(hubs) != list(self.records):
            self.records = {hub: self.records.get(hub) or HubRecord(hub) for hub in hubs}
            self._save()

    def publish(self, topics: Iterable[str]) -> None:
        """Queue a ping to every hub for each topic (a feed's self URL), due now."""
        topics = list(topics)
        if not topics or not self.records:
            return
        now = self.clock()
        for record in self.records.values():
            for topic in topics:
                record.pending.setdefault(topic, Pending(0, now))
        self._save()

    def next_due(self) -> datetime | None:
        times = [p.next_at for r in self.records.values() for p in r.pending.values()]
        return min(times, default=None)

    async def run_due(self) -> int:
        """Send every ping that is due, all at once; record the outcomes. How many were sent."""
        async with self._lock:
            now = self.clock()
            due = [
                (hub, topic)
                for hub, record in self.records.items()
                for topic, pending in sorted(record.pending.items())
                if pending.next_at <= now
            ]
            if not due:
                return 0
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                outcomes = await asyncio.gather(*(_ping(session, h, t) for h, t in due))
            for (hub, topic), outcome in zip(due, outcomes, strict=True):
                self._record(hub, topic, outcome)
            await asyncio.to_thread(self._save)
            return len(due)

    def _record(self, hub: str, topic: str, outcome: Outcome) -> None:
        record = self.records.get(hub)
        if record is None:  # the hub was removed from the configuration meanwhile
            return
        now = self.clock()
        record.last_status = outcome.status
        pending = record.pending.get(topic)
        if outcome.ok:
            record.last_ok = now
            record.pending.pop(topic, None)
            event(log, logging.INFO, "websub ping ok", hub=hub, topic=topic, status=outcome.status)
            return
        record.last_failure = now
        attempts = (pending.attempts if pending else 0) + 1
        if outcome.retry and attempts < MAX_ATTEMPTS:
            at = now + retry_delay(attempts)
            record.pending[topic] = Pending(attempts, at)
            event(
                log,
                logging.WARNING,
                "websub ping failed, will retry",
                hub=hub,
                topic=topic,
                status=outcome.status,
                attempts=attempts,
                next_at=at,
            )
            return
        record.pending.pop(topic, None)
        record.given_up += 1
        event(
            log,
            logging.ERROR,
            "websub ping given up",
            hub=hub,
            topic=topic,
            status=outcome.status,
            attempts=attempts,
            fix="check feeds.websub_hubs names the hub's publish URL"
            if not outcome.retry
            else "the hub is down; the next change of this feed pings it again",
        )

    def _save(self) -> None:
        try:
            save_records(self.state, self.records.values())
        except OSError as exc:  # the record is a note: pings go on without it
            event(log, logging.ERROR, "websub record not written", error=repr(exc))


async def _ping(session: aiohttp.ClientSession, hub: str, topic: str) -> Outcome:
    form = {"hub.mode": "publish", "hub.topic": topic, "hub.url": topic}
    try:
        async with session.post(hub, data=form, allow_redirects=False) as response:
            await response.read()
            code = response.status
    except TimeoutError:
        return Outcome("timeout", ok=False, retry=True)
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(f"error: {type(exc).__name__}", ok=False, retry=True)
    ok = 200 <= code < 300
    return Outcome(str(code), ok=ok, retry=code >= 500 or code in _RETRIED)


class WebSub:
    """The daemon's side: queue after each build, send in a task, re-arm a timer for the
    next retry. Nothing here raises into the daemon."""

    def __init__(self, config: Config, clock: Clock, timers: Timers, tasks: Tasks) -> None:
        self.pinger = Pinger(config.feeds.websub_hubs, config.paths.state, clock)
        self._timers = timers
        self._tasks = tasks

    def built(self, changed_urls: Sequence[str]) -> None:
        """After a build: queue pings for what it wrote, and send what is due (pings
        left queued by an earlier run of the daemon too)."""
        self.pinger.publish(changed_urls)
        if self.pinger.next_due() is not None:
            self._tasks.spawn(self.run())

    def reconfigure(self, config: Config) -> None:
        self.pinger.set_hubs(config.feeds.websub_hubs)

    async def run(self) -> None:
        due = None
        try:
            await self.pinger.run_due()
            due = self.pinger.next_due()
        except Exception as exc:  # a bug or an odd local error: logged, tried again later
            event(log, logging.ERROR, "websub pings failed", error=repr(exc))
            due = self.pinger.clock() + FIRST_RETRY
        self._timers.arm("websub", due, self._wake)

    def _wake(self) -> None:
        self._tasks.spawn(self.run())
