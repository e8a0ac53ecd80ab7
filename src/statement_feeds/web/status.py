"""``/healthz`` and ``/metrics``: what the web side reports about itself.

``/healthz`` is for load balancers and probes, which need a yes or no: its body
names checks and fixed words ("ok", "error", "not built"), never a path or an
exception's text (those say where the state lives and how it is laid out, to
anyone who can reach the port). The details go to the log, for the operator.

Feed figures come from the build's index (``adapters.front_page``): no feed file
is parsed, and nothing planted in ``feeds/`` is counted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..config import Config
from ..errors import StatementFeedsError
from ..feeds.front_page import FrontPageFile
from ..feeds.hub_record import HubRecord, load_records
from ..logs import event
from ..state.api import Store
from ..state.coordination import ping_database
from .feed_files import FeedFiles
from .metrics import render_metrics
from .store_thread import StoreThread

__all__ = ["health", "metrics"]

log = logging.getLogger("statement_feeds.web.service")

_DELIVERY_STATES = ("pending", "sending", "sent", "deferred", "failed", "cancelled")


async def health(
    store: StoreThread, front: FrontPageFile, feeds: FeedFiles, database_url: str = ""
) -> tuple[bool, dict[str, Any]]:
    """(ready, body). Live whenever it answers; ready with the store and an index (and,
    with ``[state] url``, the database answering ``SELECT 1``)."""
    checks = {"store": await _store_check(store), "feeds": _feeds_check(front)}
    if database_url:
        checks["database"] = await _database_check(database_url)
    page = front.current()
    built = feeds.last_written(page.tags) if page else None
    ready = all(v == "ok" for v in checks.values())
    return ready, {
        "status": "ok" if ready else "unavailable",
        "live": True,
        "ready": ready,
        "checks": checks,
        "last_build": built.isoformat() if built else None,
    }


async def _store_check(store: StoreThread) -> str:
    try:
        await store.run(lambda s: s.edition_count())
    except Exception as exc:  # any failure, sqlite3's included: readiness answers, not crashes
        event(log, logging.ERROR, "web.health_store_failed", error=f"{type(exc).__name__}: {exc}")
        return "error"
    return "ok"


async def _database_check(url: str) -> str:
    try:
        # A connection of its own, in a thread: the probe never waits behind the store's
        # work, and a server that does not answer costs the probe ping_database's timeout.
        await asyncio.to_thread(ping_database, url)
    except StatementFeedsError as exc:  # the message names host:port/db, never a password
        event(log, logging.ERROR, "web.health_database_failed", error=str(exc))
        return "error"
    return "ok"


def _feeds_check(front: FrontPageFile) -> str:
    if front.current() is not None:
        return "ok"
    # Unusable (logged by FrontPageFile), or simply no build yet.
    return "error" if front.problem else "not built"


async def metrics(
    store: StoreThread, front: FrontPageFile, feeds: FeedFiles, config: Config | None = None
) -> str:
    def read(state: Store) -> tuple[Any, int, dict[str, int]]:
        return state.counts(), state.edition_count(), state.subscriber_totals()

    counts, editions, subscribers = await store.run(read)
    page = front.current()
    languages = page.languages if page else ()
    return render_metrics(
        statements={item.lang: item.statements for item in languages},
        feeds=len(languages),
        subscribers=subscribers,
        editions=editions,
        deliveries={state: getattr(counts, state) for state in _DELIVERY_STATES},
        last_build=feeds.last_written(item.lang for item in languages),
        hubs=await _hubs(config),
    )


async def _hubs(config: Config | None) -> list[HubRecord]:
    """The WebSub ping record the daemon writes (``daemon.websub``), for its hubs."""
    if config is None or not config.feeds.websub_hubs:
        return []
    state, hubs = config.paths.state, config.feeds.websub_hubs
    return list((await asyncio.to_thread(load_records, state, hubs)).values())
