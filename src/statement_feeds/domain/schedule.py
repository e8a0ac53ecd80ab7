"""Pure scheduling decisions: which due time counts, and whether a missed edition still runs.

The cron arithmetic itself lives in ``statement_feeds.daemon.triggers`` (it uses APScheduler's
``CronTrigger``, which the core must not import); this module holds the rules that sit on
top of it, so that they can be tested with plain datetimes:

- a wall-clock time that occurs twice (the hour repeated when clocks go back) is due once,
  at its first occurrence;
- an edition is run when its due time has passed, none exists for it yet, and it is less
  than ``misfire_grace`` late; otherwise it is skipped and its statements roll into the
  next edition. The ledger, not the scheduler, says whether one exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

__all__ = [
    "Action",
    "Decision",
    "decide",
    "is_repeated_wall_time",
    "plainly_valid_crontab",
    "standard_crontab",
    "unless_before_history",
]


class Action(Enum):
    RUN = "run"
    ALREADY_DONE = "already_done"  # the ledger has an edition for this due time
    TOO_LATE = "too_late"  # missed by more than misfire_grace: rolls into the next edition
    NEVER_DUE = "never_due"  # due before the state had a subscriber or an edition
    NOTHING_DUE = "nothing_due"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    frequency: str
    due_at: datetime | None
    late: timedelta = timedelta(0)


def is_repeated_wall_time(moment: datetime) -> bool:
    """True for the *second* occurrence of a local time repeated when the clocks go back.

    A daily 01:30 job in Europe/London meets 01:30 twice on the last Sunday of October;
    APScheduler 3.x fires at both, which would mean two editions in one day.
    """
    if moment.tzinfo is None:
        return False
    first = moment.replace(fold=0).utcoffset()
    second = moment.replace(fold=1).utcoffset()
    if first is None or second is None:
        return False
    # Clocks going back: the earlier offset is the larger one. (In a spring-forward gap it
    # is the other way round; such a time occurs once, if at all, and is kept.)
    return first > second and moment.utcoffset() == second


def decide(
    frequency: str,
    due_at: datetime | None,
    now: datetime,
    grace: timedelta,
    exists: bool,
) -> Decision:
    """Whether the edition due at ``due_at`` (the latest due time <= now) should run now."""
    if due_at is None or due_at > now:
        return Decision(Action.NOTHING_DUE, frequency, None)
    late = now - due_at
    if exists:
        return Decision(Action.ALREADY_DONE, frequency, due_at, late)
    if late >= grace:
        return Decision(Action.TOO_LATE, frequency, due_at, late)
    return Decision(Action.RUN, frequency, due_at, late)


def unless_before_history(decision: Decision, history_start: datetime | None) -> Decision:
    """A skipped edition due before the state's first subscriber or edition (None: it
    has neither yet) was missed by nobody: a fresh state folder is not "down since
    last Monday", so the daemon does not warn about it."""
    due = decision.due_at
    never_due = due is not None and (history_start is None or due < history_start)
    if decision.action is Action.TOO_LATE and never_due:
        return Decision(Action.NEVER_DUE, decision.frequency, due, decision.late)
    return decision


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def standard_crontab(expr: str) -> str:
    """Rewrite the day-of-week field of a standard crontab for APScheduler 3.x.

    Standard cron counts weekdays from Sunday = 0 (7 is Sunday too); APScheduler's
    ``from_crontab`` counts from Monday = 0, so ``0 7 * * 1`` would fire on Tuesdays.
    The field is turned into explicit day names, which both read the same way.
    Raises ValueError for a day-of-week field that is not valid cron.
    """
    fields = expr.split()
    if len(fields) != 5 or fields[4] == "*":
        return expr  # APScheduler reports a wrong field count itself
    days = set()
    for part in fields[4].lower().split(","):
        days |= _cron_days(part)
    fields[4] = ",".join(_DAY_NAMES[day] for day in sorted(days))
    return " ".join(fields)


def _cron_days(part: str) -> set[int]:
    base, slash, step_text = part.partition("/")
    step = int(step_text) if slash and step_text.isdigit() else 1
    if slash and (not step_text.isdigit() or step < 1):
        raise ValueError(f"bad step in day-of-week {part!r}")
    if base == "*":
        first, last = 0, 6
    elif "-" in base:
        start, _, end = base.partition("-")
        first, last = _cron_day(start), _cron_day(end)
    else:
        first = _cron_day(base)
        last = 7 if slash else first  # "1/2" means from Monday to the end of the week
    if last < first:
        raise ValueError(f"day-of-week range {part!r} runs backwards")
    return {day % 7 for day in range(first, last + 1, step)}


def _cron_day(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text in _DAY_NAMES:
        return _DAY_NAMES.index(text)
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun..sat)")


# minute, hour, day of month, month: the ranges APScheduler 3.x checks them against.
_PLAIN_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12))


def plainly_valid_crontab(expr: str) -> bool:
    """True when APScheduler certainly accepts ``standard_crontab(expr)``.

    Five fields; the first four ``*`` or lists of whole numbers in range, the day of
    the week anything :func:`standard_crontab` reads. False means "ask APScheduler",
    not "invalid": ranges, steps and names in the other fields are left to it. Every
    command validates the digest schedule, and importing APScheduler (and asyncio with
    it) was an eighth of a one-file rebuild; the defaults and the usual "30 6 * * 1-5"
    are decided here. A property test checks that True always agrees with APScheduler.
    """
    fields = expr.split()
    if len(fields) != 5:
        return False
    for text, (low, high) in zip(fields, _PLAIN_RANGES, strict=False):
        if text != "*" and not all(_plain_number(part, low, high) for part in text.split(",")):
            return False
    try:
        standard_crontab(expr)
    except ValueError:
        return False
    return True


def _plain_number(text: str, low: int, high: int) -> bool:
    # Two digits at most: every field's range fits, and int() of thousands of digits
    # raises (Python's conversion limit) where APScheduler's message belongs.
    return len(text) <= 2 and text.isascii() and text.isdigit() and low <= int(text) <= high
