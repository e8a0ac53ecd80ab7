"""A subscriber's current digest settings, as the preferences page shows them."""

from __future__ import annotations

import asyncio

from .adapters.subscriber_files import find_subscriber
from .config import Config
from .core.web_subscribers import Preferences
from .web_store import StoreThread

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
    row = await asyncio.to_thread(find_subscriber, paths.subscribers, default, address)
    if row is not None:
        return Preferences(row.languages, row.frequency)
    return Preferences((default,), "daily")
