"""Timestamps as the state database stores them: fixed-width ISO 8601 UTC text."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["from_ts", "to_ts"]


def to_ts(moment: datetime) -> str:
    """Fixed-width UTC text: lexical order equals time order, in SQLite and PostgreSQL."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: the store needs aware times")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)
