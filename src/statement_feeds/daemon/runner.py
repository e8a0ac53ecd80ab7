"""What the daemon needs from the digest side, and the one place that wires it.

The daemon decides *when*; the runner (:class:`~statement_feeds.digests.service.Digests`)
decides *what* and records it in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ..clock import Clock
from ..config import Config
from ..errors import ConfigError
from ..logs import event

__all__ = ["FREQUENCIES", "EditionRunner", "build_runner"]

log = logging.getLogger(__name__)
FREQUENCIES = ("daily", "weekly")


class EditionRunner(Protocol):
    """What the daemon needs from the digest side (planning + sending + the ledger).

    The daemon decides *when*; the runner decides *what* and records it. Every call is
    made under the daemon's work lock, never concurrently with another.
    """

    async def run_edition(
        self,
        frequency: str,
        due_at: datetime,
        stop: asyncio.Event,
        *,
        planned: Callable[[], None] | None = None,
    ) -> None:
        """Plan the edition due at ``due_at`` (idempotent per frequency + due_at: the
        store's unique constraint), call ``planned`` (the daemon wakes the other
        senders), and deliver it. When ``stop`` is set: send nothing new, finish or
        abandon-and-record the messages in flight, return promptly."""

    async def resume_deliveries(self, stop: asyncio.Event) -> None:
        """After a restart or at a retry wake-up: recover unknown outcomes, send what is
        pending or due for retry. Same ``stop`` contract as :meth:`run_edition`."""

    def edition_exists(self, frequency: str, due_at: datetime) -> bool:
        """Whether the ledger holds an edition for this due time (sent or not)."""

    def next_retry_at(self) -> datetime | None:
        """When the earliest deferred delivery is due, if any."""

    def history_start(self) -> datetime | None:
        """When the ledger first had a subscriber or an edition (None: not yet); an
        edition due before it was never due for this site."""

    def reload(self, config: Config) -> None:
        """A new configuration or changed templates: re-read them. Raise
        :class:`StatementFeedsError` to reject them (the daemon keeps the old ones)."""

    def subscribers_changed(self) -> None:
        """The subscriber files changed: record join times now, so that "joined" means
        "added to the list", not "first edition planned after being added"."""


def build_runner(config: Config, clock: Clock) -> EditionRunner | None:
    """The digest side for ``run``: :class:`~statement_feeds.digests.service.Digests`.

    None when ``http.public_url`` is not set, because every digest must carry an
    unsubscribe link under it: the daemon then keeps the feeds current, schedules no
    editions and says so in its log.
    """
    if not config.http.public_url:
        if any(config.paths.subscribers.glob("*.csv")):
            # Subscribers but no unsubscribe base: refuse rather than silently never mail.
            raise ConfigError(
                "required once digests are sent (there are subscriber files); add "
                'public_url = "https://.../" under [http]',
                path=str(config.path),
                key="http.public_url",
            )
        event(log, logging.WARNING, "digests disabled", reason="http.public_url is not set")
        return None
    from ..digests.service import Digests

    return Digests(config, clock)
