"""The one source of "now": injectable so that tests drive time instead of sleeping."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock"]

Clock = Callable[[], datetime]
FAKE_NOW_ENV = "STATEMENT_FEEDS_FAKE_NOW"


def system_clock() -> datetime:
    """Aware UTC now; ``$STATEMENT_FEEDS_FAKE_NOW`` (ISO 8601) pins it for subprocess tests."""
    pinned = os.environ.get(FAKE_NOW_ENV)
    if pinned:
        return datetime.fromisoformat(pinned).astimezone(UTC)
    return datetime.now(UTC)
