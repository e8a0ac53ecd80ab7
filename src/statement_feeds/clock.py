"""The one source of "now": injectable so that tests drive time instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from .environment import fake_now

__all__ = ["Clock", "iso_time", "system_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Aware UTC now; ``$STATEMENT_FEEDS_FAKE_NOW`` (ISO 8601) pins it for subprocess tests."""
    pinned = fake_now()  # ConfigError naming the variable if it is not a date-time
    return pinned if pinned is not None else datetime.now(UTC)


def iso_time(moment: datetime, zone: tzinfo | None) -> str:
    """The one way a time is shown to people, in ``status``, ``deliveries`` and the logs:
    ISO 8601 to the second with the offset, in ``zone`` (the site's; None: the host's),
    e.g. ``2026-12-03T07:00:00+00:00``. The offset makes it unambiguous whatever the
    zone, and a reader of the site's schedule sees the times it is written in."""
    return moment.astimezone(zone).isoformat(timespec="seconds")
