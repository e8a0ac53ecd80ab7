"""Why an edition has no message: counts gathered while planning, told in plain words.

Planning already looks at every subscriber; noting why one got nothing costs a
few comparisons there (the selector caches per language list), so no second pass
over a big list is needed to explain an empty edition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..domain.selection import Selector

__all__ = ["Diagnosis"]


def _day(moment: datetime) -> str:
    if moment.utcoffset() is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(slots=True)
class Diagnosis:
    """What planning saw, per reason a subscriber of this edition got nothing."""

    frequency: str
    published: int  # published statements in the catalog
    max_age: timedelta
    listed: int = 0  # valid subscribers in the files, any frequency
    other_frequency: int = 0
    first_seen_now: int = 0  # "new" starts now for them: nothing can be new yet
    blocked: int = 0
    no_language: int = 0  # nothing published in any of their languages
    nothing_since_join: int = 0
    already_sent: int = 0
    too_old: int = 0
    newest: datetime | None = None  # newest statement among those "nothing since join"
    earliest_join: datetime | None = None

    def empty(self, selector: Selector, languages: tuple[str, ...], joined_at: datetime) -> None:
        """Note why a subscriber with a known join time got nothing."""
        newest = selector.newest(languages)
        candidates = selector.candidates(languages)
        if newest is None:
            self.no_language += 1
        elif newest <= joined_at:
            self.nothing_since_join += 1
            self.newest = newest if self.newest is None else max(self.newest, newest)
            self.earliest_join = min(self.earliest_join or joined_at, joined_at)
        elif candidates and candidates[0].published > joined_at:
            self.already_sent += 1  # new ones within max_age exist: all were assigned
        else:
            self.too_old += 1

    def lines(self) -> list[str]:
        """One or two lines: why nobody gets a message."""
        if self.listed == 0:
            return ["nobody is subscribed (no valid address in the subscriber files)"]
        if self.listed == self.other_frequency:
            others = f"{self.listed} have another"
            return [f"no subscriber has the frequency {self.frequency} ({others})"]
        if self.published == 0:
            return ["no statement is published yet"]
        reasons = [text for count, text in self._reasons() if count]
        considered = self.listed - self.other_frequency
        lines = [f"nothing new for any of the {considered} subscribers: " + "; ".join(reasons)]
        if self.nothing_since_join or self.first_seen_now:
            lines.append(
                'a subscriber\'s "new" starts when the state first saw them '
                "(the first `digest send`, `run` or sign-up after they were added)"
            )
        return lines

    def _reasons(self) -> list[tuple[int, str]]:
        since = ""
        if self.newest is not None and self.earliest_join is not None:
            since = (
                f" (newest statement {_day(self.newest)}, earliest join {_day(self.earliest_join)})"
            )
        days = self.max_age.total_seconds() / 86400
        return [
            (self.first_seen_now, f"{self.first_seen_now} first seen by the state just now"),
            (
                self.nothing_since_join,
                f"{self.nothing_since_join} with nothing published since they joined{since}",
            ),
            (self.already_sent, f"{self.already_sent} already sent everything new"),
            (
                self.too_old,
                f"{self.too_old} whose new statements are all older than "
                f"digest.max_age ({days:g} days)",
            ),
            (self.no_language, f"{self.no_language} with nothing published in their languages"),
            (self.blocked, f"{self.blocked} unsubscribed or bounced"),
        ]
