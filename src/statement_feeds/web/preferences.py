"""A subscriber's current digest settings, as the preferences page shows them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ..config import Config
from ..digests.subscriber_files import find_subscriber
from ..domain.subscribers import email_key
from ..domain.web_subscribers import Preferences
from .store_thread import StoreThread

__all__ = ["current_preferences"]


async def current_preferences(config: Config, store: StoreThread, address: str) -> Preferences:
    """What planning uses for ``address``, in its order: the web subscription or the
    override chosen on this page, else the address's row in the subscriber files,
    else what a row with only the address means (default language, daily).

    The files are the admin's list, not the state's: a CSV subscriber who never
    saved this page is found there (issue: they saw the defaults, and saving them
    silently switched their language and frequency).
    """
    stored = await store.run(lambda s: s.preferences_for(address))
    if stored is not None:
        return stored
    paths, default = config.paths, config.site.default_language
    rows = await asyncio.to_thread(find_subscriber, paths.subscribers, default, address)
    if len(rows) > 1:  # listed in several files: the row the state saw first keeps it
        key = email_key(address)
        seen = await store.run(
            lambda s: s.sightings(datetime.now(UTC), record=False).first_seen(
                [(key, r.source) for r in rows]
            )
        )
        times = seen.get(key, {})
        rows = sorted(rows, key=lambda r: times.get(r.source, "~"))  # stable: file order
    if rows:
        return Preferences(rows[0].languages, rows[0].frequency)
    return Preferences((default,), "daily")
