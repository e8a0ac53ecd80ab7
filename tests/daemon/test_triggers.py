"""Due times and the misfire policy, driven by explicit datetimes (no sleeping, no scheduler)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from statement_feeds.daemon.triggers import (
    OffsetClock,
    WallClockCronTrigger,
    clock_offset,
    fire_times,
    latest_due,
)
from statement_feeds.domain.schedule import (
    Action,
    decide,
    is_repeated_wall_time,
    plainly_valid_crontab,
    standard_crontab,
    unless_before_history,
)

LONDON = ZoneInfo("Europe/London")
GRACE = timedelta(hours=6)


def utc(*fields: int) -> datetime:
    return datetime.fromisoformat(
        "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}+00:00".format(*fields, *[0] * (6 - len(fields)))
    )


def test_spring_forward_daily_0130_fires_once_a_day() -> None:
    # 2024-03-31: 01:00 GMT jumps to 02:00 BST, so 01:30 does not exist that day.
    fires = list(fire_times("30 1 * * *", LONDON, utc(2024, 3, 29), utc(2024, 4, 2)))
    assert [f.astimezone(UTC) for f in fires] == [
        utc(2024, 3, 29, 1, 30),
        utc(2024, 3, 30, 1, 30),
        utc(2024, 3, 31, 1, 30),  # once, an hour "late" in local time (02:30 BST), like cron
        utc(2024, 4, 1, 0, 30),  # 01:30 BST
    ]


def test_fall_back_daily_0130_fires_once_not_twice() -> None:
    # 2024-10-27: 02:00 BST goes back to 01:00 GMT, so 01:30 happens twice.
    fires = list(fire_times("30 1 * * *", LONDON, utc(2024, 10, 25), utc(2024, 10, 29)))
    assert [f.astimezone(UTC) for f in fires] == [
        utc(2024, 10, 25, 0, 30),
        utc(2024, 10, 26, 0, 30),
        utc(2024, 10, 27, 0, 30),  # the first 01:30 (BST) only
        utc(2024, 10, 28, 1, 30),  # 01:30 GMT
    ]


def test_daily_0700_keeps_local_time_across_both_changes() -> None:
    spring = list(fire_times("0 7 * * *", LONDON, utc(2024, 3, 30), utc(2024, 4, 1)))
    autumn = list(fire_times("0 7 * * *", LONDON, utc(2024, 10, 26), utc(2024, 10, 28)))
    assert [f.astimezone(UTC).hour for f in spring] == [7, 6]
    assert [f.astimezone(UTC).hour for f in autumn] == [6, 7]
    assert all(f.astimezone(LONDON).hour == 7 for f in spring + autumn)


def test_repeated_wall_time_is_only_the_second_occurrence() -> None:
    first = utc(2024, 10, 27, 0, 30).astimezone(LONDON)
    second = utc(2024, 10, 27, 1, 30).astimezone(LONDON)
    assert (first.hour, second.hour) == (1, 1)
    assert not is_repeated_wall_time(first)
    assert is_repeated_wall_time(second)
    assert not is_repeated_wall_time(datetime(2024, 3, 31, 1, 30, tzinfo=LONDON))  # the gap
    assert not is_repeated_wall_time(datetime(2024, 7, 1, 1, 30, tzinfo=LONDON))
    assert not is_repeated_wall_time(datetime(2024, 7, 1, 1, 30))  # naive


def test_latest_due_on_the_fall_back_day_is_the_first_0130() -> None:
    now = utc(2024, 10, 27, 3)
    assert latest_due("30 1 * * *", LONDON, now) == utc(2024, 10, 27, 0, 30)


def test_latest_due_weekly_and_every_minute() -> None:
    wednesday = utc(2025, 1, 15, 12)
    assert latest_due("0 7 * * mon", LONDON, wednesday) == utc(2025, 1, 13, 7)
    assert latest_due("* * * * *", LONDON, utc(2025, 1, 15, 12, 0, 30)) == utc(2025, 1, 15, 12)
    assert latest_due("0 7 1 1 *", LONDON, wednesday, horizon=timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("history_start", "action"),
    [
        (None, Action.NEVER_DUE),  # no subscriber, no edition yet: a fresh state folder
        (utc(2025, 1, 15, 13), Action.NEVER_DUE),  # the first subscriber came after 07:00
        (utc(2025, 1, 15, 7), Action.TOO_LATE),  # joined at the due time: it was missed
        (utc(2024, 1, 1), Action.TOO_LATE),  # an established site that was down
    ],
)
def test_an_edition_due_before_the_state_had_anyone_was_never_due(
    history_start: datetime | None, action: Action
) -> None:
    now, due = utc(2025, 1, 15, 20), utc(2025, 1, 15, 7)
    decision = unless_before_history(decide("daily", due, now, GRACE, False), history_start)
    assert (decision.action, decision.due_at, decision.late) == (action, due, now - due)


def test_only_a_skipped_edition_can_be_never_due() -> None:
    now, due = utc(2025, 1, 15, 8), utc(2025, 1, 15, 7)
    for exists in (False, True):
        decision = decide("daily", due, now, GRACE, exists)
        assert unless_before_history(decision, None) == decision


@pytest.mark.parametrize(
    ("now", "exists", "action"),
    [
        (utc(2025, 1, 15, 7, 0, 1), False, Action.RUN),  # on time (a SIGCONT just after)
        (utc(2025, 1, 15, 12, 59), False, Action.RUN),  # down for 5:59: within grace
        (utc(2025, 1, 15, 13, 0), False, Action.TOO_LATE),  # exactly the grace: skipped
        (utc(2025, 1, 15, 20), False, Action.TOO_LATE),  # down beyond grace
        (utc(2025, 1, 15, 8), True, Action.ALREADY_DONE),  # restart after sending
    ],
)
def test_misfire_decision(now: datetime, exists: bool, action: Action) -> None:
    due = latest_due("0 7 * * *", LONDON, now)
    assert due == utc(2025, 1, 15, 7)
    decision = decide("daily", due, now, GRACE, exists)
    assert decision.action is action
    assert decision.late == now - due


def test_nothing_due() -> None:
    assert decide("daily", None, utc(2025, 1, 1), GRACE, False).action is Action.NOTHING_DUE
    future = decide("daily", utc(2025, 1, 2), utc(2025, 1, 1), GRACE, False)
    assert future.action is Action.NOTHING_DUE


def test_daemon_down_across_two_due_times_runs_only_the_latest() -> None:
    # Hourly cron, down from 09:10 to 11:30: 10:00 and 11:00 were missed; one edition (11:00).
    now = utc(2025, 1, 15, 11, 30)
    due = latest_due("0 * * * *", LONDON, now)
    assert due == utc(2025, 1, 15, 11)
    assert decide("daily", due, now, GRACE, False).action is Action.RUN


def test_trigger_with_offset_fires_when_the_fake_clock_reaches_the_due_time() -> None:
    real_now = utc(2030, 6, 1, 12)
    offset = utc(2025, 1, 15, 6, 59, 58) - real_now  # fake clock: 06:59:58 London
    trigger = WallClockCronTrigger("0 7 * * *", LONDON, offset)
    first = trigger.get_next_fire_time(None, real_now)
    assert first == real_now + timedelta(seconds=2)
    second = trigger.get_next_fire_time(first, first + timedelta(microseconds=1))
    assert second == first + timedelta(days=1)


def test_trigger_skips_the_repeated_hour_for_apscheduler_too() -> None:
    trigger = WallClockCronTrigger("30 1 * * *", LONDON)
    first = trigger.get_next_fire_time(None, utc(2024, 10, 27))
    assert first == utc(2024, 10, 27, 0, 30)
    assert trigger.get_next_fire_time(first, first) == utc(2024, 10, 28, 1, 30)


def test_offset_clock_advances_from_its_start() -> None:
    clock = OffsetClock.starting_at(utc(2025, 1, 15, 7))
    a, b = clock(), clock()
    assert utc(2025, 1, 15, 7) <= a <= b < utc(2025, 1, 15, 7, 0, 5)
    assert clock_offset(clock) == clock.offset
    assert clock_offset(lambda: datetime.now(UTC)) == timedelta(0)


def test_sub_hourly_cron_on_the_fall_back_night_terminates_and_never_repeats() -> None:
    fires = list(fire_times("*/30 * * * *", LONDON, utc(2024, 10, 26, 23), utc(2024, 10, 27, 4)))
    assert fires == sorted(set(fires))
    walls = [f.astimezone(LONDON).replace(tzinfo=None) for f in fires]
    assert len(walls) == len(set(walls))
    assert utc(2024, 10, 27, 0, 30) in fires and utc(2024, 10, 27, 3) in fires


# --- standard cron weekdays (APScheduler 3.x counts from Monday = 0) -------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 7 * * 1", "0 7 * * mon"),
        ("0 7 * * 0", "0 7 * * sun"),
        ("0 7 * * 7", "0 7 * * sun"),
        ("0 7 * * 1-5", "0 7 * * mon,tue,wed,thu,fri"),
        ("0 7 * * 0-6", "0 7 * * sun,mon,tue,wed,thu,fri,sat"),
        ("0 7 * * */2", "0 7 * * sun,tue,thu,sat"),
        ("0 7 * * 5-7", "0 7 * * sun,fri,sat"),
        ("0 7 * * mon", "0 7 * * mon"),
        ("0 7 * * Sat,sun", "0 7 * * sun,sat"),
        ("0 7 * * *", "0 7 * * *"),
    ],
)
def test_standard_crontab_weekdays(expr: str, expected: str) -> None:
    assert standard_crontab(expr) == expected


@pytest.mark.parametrize("expr", ["0 7 * * 8", "0 7 * * 5-1", "0 7 * * funday", "0 7 * * 1/0"])
def test_standard_crontab_rejects_bad_weekdays(expr: str) -> None:
    with pytest.raises(ValueError):
        standard_crontab(expr)


def test_numeric_monday_fires_on_monday() -> None:
    london = ZoneInfo("Europe/London")
    start = datetime(2026, 11, 28, tzinfo=london)  # a Saturday
    fires = list(fire_times("0 7 * * 1", london, start, start + timedelta(days=8)))
    assert [f.astimezone(london).strftime("%a %H:%M") for f in fires] == ["Mon 07:00"]


# --- cron validation without APScheduler (config loading, every command) --------------

_ITEM = st.one_of(
    st.just("*"),
    st.integers(-1, 70).map(str),
    st.sampled_from(["07", "٣", "", "?", "L", "mon", "jan", "last", "1st mon", "0x1"]),
    st.tuples(st.integers(0, 70), st.integers(0, 70)).map(lambda r: f"{r[0]}-{r[1]}"),
    st.tuples(st.sampled_from(["*", "1", "0-6", "5"]), st.integers(0, 70)).map(
        lambda s: f"{s[0]}/{s[1]}"
    ),
)
_EDGES = [str(n) for n in (-1, 0, 1, 7, 12, 13, 23, 24, 30, 31, 32, 59, 60)]
# Mostly what the fast path decides (stars and numbers, some just out of range), so that
# a wrong range in it is found; the rest exercises "leave it to APScheduler".
_PLAIN = st.one_of(
    st.just("*"),
    st.lists(st.sampled_from(_EDGES), min_size=1, max_size=2).map(",".join),
)
_FIELD = st.one_of(_PLAIN, _PLAIN, st.lists(_ITEM, min_size=1, max_size=3).map(",".join))
_EXPR = st.one_of(
    st.lists(_PLAIN, min_size=5, max_size=5), st.lists(_FIELD, min_size=4, max_size=6)
).map(" ".join)


def _apscheduler_accepts(expr: str) -> bool:
    try:
        CronTrigger.from_crontab(standard_crontab(expr), timezone=ZoneInfo("Europe/London"))
    except ValueError:
        return False
    return True


@settings(max_examples=500)
@given(_EXPR)
def test_plainly_valid_crontab_never_accepts_what_apscheduler_refuses(expr: str) -> None:
    if plainly_valid_crontab(expr):
        assert _apscheduler_accepts(expr), expr


@pytest.mark.parametrize(
    "expr", ["0 7 * * *", "0 7 * * mon", "30 6 * * 1-5", "0,30 8,20 1,15 1,7 *", "59 23 31 12 7"]
)
def test_usual_schedules_are_decided_without_apscheduler(expr: str) -> None:
    assert plainly_valid_crontab(expr) and _apscheduler_accepts(expr)


@pytest.mark.parametrize(
    ("expr", "apscheduler"),
    [
        ("0 24 * * *", False),  # out of range: APScheduler gives the message
        ("0 7 * * funday", False),
        ("0 7 * *", False),
        ("*/15 7 * * *", True),  # steps and ranges are APScheduler's to judge
        ("0 7 1-5 * *", True),
        ("0 7 * jan *", True),
        ("007 7 * * *", True),  # three digits: APScheduler reads it
        ("0" * 5000 + "7 7 * * *", False),  # beyond int()'s digit limit: no crash here
    ],
)
def test_anything_else_is_left_to_apscheduler(expr: str, apscheduler: bool) -> None:
    assert not plainly_valid_crontab(expr)
    assert _apscheduler_accepts(expr) is apscheduler


def test_loading_the_default_config_does_not_import_apscheduler(tmp_path: Path) -> None:
    (tmp_path / "statement-feeds.toml").write_text(
        '[site]\ntitle = "T"\nurl = "https://example.org/"\n', encoding="utf-8"
    )
    code = (
        "import sys; from pathlib import Path; from statement_feeds.config import load_config; "
        f"load_config(Path({str(tmp_path / 'statement-feeds.toml')!r})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('apscheduler', 'asyncio')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
