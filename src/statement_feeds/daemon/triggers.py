"""Cron due times in the site's zone, and the clock the daemon's scheduler runs on.

APScheduler 3.x's ``CronTrigger`` does the cron arithmetic (DST-aware through zoneinfo),
with one correction: on the day the clocks go back it fires at *both* occurrences of a
repeated wall time (a daily 01:30 job would send two editions); :class:`WallClockCronTrigger`
keeps the first only. The same trigger computes the due times the daemon checks against
the ledger on start, so the scheduler and the catch-up logic can never disagree.

Controllable time: the scheduler measures real time, the daemon's clock may be fake. A
:class:`OffsetClock` runs at real speed from a pinned start (``$STATEMENT_FEEDS_FAKE_START``,
for subprocess tests: "it is 06:59:58 in London" and two seconds later the 07:00 edition is
due); triggers are shifted by the same constant offset, so APScheduler wakes up when the
*fake* clock reaches a due time. A SIGSTOP'ed process misses the real wake-up exactly as
it would the fake one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from ..clock import Clock, system_clock
from ..domain.schedule import is_repeated_wall_time, standard_crontab
from ..environment import FAKE_START_ENV, fake_start

__all__ = [
    "FAKE_START_ENV",
    "OffsetClock",
    "WallClockCronTrigger",
    "clock_from_env",
    "clock_offset",
    "fire_times",
    "latest_due",
]

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class OffsetClock:
    """Real time shifted by a constant: a fake "now" that still advances (and keeps
    advancing while the process is stopped, like the real one)."""

    offset: timedelta

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @classmethod
    def starting_at(cls, start: datetime) -> OffsetClock:
        return cls(start.astimezone(UTC) - datetime.now(UTC))


def clock_from_env() -> Clock:
    """``$STATEMENT_FEEDS_FAKE_START`` (ISO 8601): an advancing fake clock, for tests.
    Otherwise :func:`statement_feeds.clock.system_clock` (which honours the pinned
    ``$STATEMENT_FEEDS_FAKE_NOW``)."""
    start = fake_start()  # ConfigError naming the variable if it is not a date-time
    if start is not None:
        return OffsetClock.starting_at(start)
    return system_clock


def clock_offset(clock: Clock) -> timedelta:
    """How far ``clock`` is ahead of real time, as one constant (exact for OffsetClock).

    Constant on purpose: the trigger maps times back and forth with it, and a jittering
    offset could make APScheduler see the previous fire time as the next one.
    """
    if isinstance(clock, OffsetClock):
        return clock.offset
    offset = clock() - datetime.now(UTC)
    return offset if abs(offset) > timedelta(seconds=1) else timedelta(0)


class WallClockCronTrigger(BaseTrigger):  # type: ignore[misc]
    """``CronTrigger.from_crontab`` in ``timezone``, each wall time once, shifted by ``offset``."""

    def __init__(self, expr: str, timezone: tzinfo, offset: timedelta = timedelta(0)) -> None:
        self.expr = expr
        self.cron = CronTrigger.from_crontab(standard_crontab(expr), timezone=timezone)
        self.offset = offset

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # The scheduler speaks real time; the cron runs in the daemon clock's time. The
        # shift is done in UTC: aware arithmetic in a zone is wall-clock arithmetic and
        # would be an hour off across a DST change.
        previous = None if previous_fire_time is None else _utc(previous_fire_time) + self.offset
        fire = self.next_due(previous, _utc(now) + self.offset)
        return None if fire is None else fire - self.offset

    def next_due(self, previous: datetime | None, now: datetime) -> datetime | None:
        """First due time at or after ``now`` (and after ``previous``), in clock time, UTC."""
        fire: datetime | None = self.cron.get_next_fire_time(previous, now)
        while fire is not None and (
            is_repeated_wall_time(fire) or (previous is not None and fire <= previous)
        ):
            fire = self.cron.get_next_fire_time(None, _past_repeat(fire))
        return None if fire is None else _utc(fire)

    def __str__(self) -> str:
        return f"cron[{self.expr}]"

    def __repr__(self) -> str:
        return f"<WallClockCronTrigger {self.expr!r} offset={self.offset}>"

    def __getstate__(self) -> dict[str, Any]:  # BaseTrigger is picklable; so is this
        return {"expr": self.expr, "cron": self.cron, "offset": self.offset}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.expr, self.cron, self.offset = state["expr"], state["cron"], state["offset"]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _past_repeat(moment: datetime) -> datetime:
    """The first whole minute after ``moment`` whose wall time is not ambiguous.

    APScheduler 3.x, asked for the next fire time from inside the hour repeated when the
    clocks go back, localises the wall time into its first occurrence and returns the
    same fire time again (or the second occurrence). The search therefore restarts past
    the whole repeated hour. Cost: a sub-hourly cron skips its fires in that hour on that
    one night a year; daily and weekly editions are unaffected.
    """
    zone = moment.tzinfo
    step = _utc(moment).replace(second=0, microsecond=0)
    for _ in range(24 * 60):  # a repeat is at most a few hours long
        step += timedelta(minutes=1)
        local = step.astimezone(zone)
        if local.replace(fold=0).utcoffset() == local.replace(fold=1).utcoffset():
            break
    return step.astimezone(zone)


def fire_times(expr: str, timezone: tzinfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """Due times of ``expr`` in ``(start, end]`` (in UTC), each wall-clock time once."""
    trigger = WallClockCronTrigger(expr, timezone)
    fire = trigger.next_due(None, start + _TICK)
    while fire is not None and fire <= end:
        # In UTC: an aware datetime inside a repeated hour never compares equal to one
        # in another zone (PEP 495), which would make ledger look-ups miss.
        yield fire
        fire = trigger.next_due(fire, fire + _TICK)


def latest_due(
    expr: str, timezone: tzinfo, now: datetime, horizon: timedelta = timedelta(days=400)
) -> datetime | None:
    """The most recent due time <= ``now`` (in UTC; looking back at most ``horizon``).

    Windows double from one hour so that an every-minute cron costs a few dozen steps
    and a yearly one still finds its last date.
    """
    window = timedelta(hours=1)
    while True:
        window = min(window, horizon)
        last = None
        for last in fire_times(expr, timezone, now - window, now):  # noqa: B007
            pass
        if last is not None or window >= horizon:
            return last
        window *= 2
