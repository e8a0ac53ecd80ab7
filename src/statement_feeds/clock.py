"""The one source of "now": injectable so that tests drive time instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .environment import fake_now

__all__ = ["Clock", "system_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Aware UTC now; ``$STATEMENT_FEEDS_FAKE_NOW`` (ISO 8601) pins it for subprocess tests."""
    pinned = fake_now()  # ConfigError naming the variable if it is not a date-time
    return pinned if pinned is not None else datetime.now(UTC)
