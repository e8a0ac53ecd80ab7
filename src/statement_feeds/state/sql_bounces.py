"""Bounce scores in the state database: ``state.bounce_api.BounceLog``.

A mixin of both stores (``sqlite.SqliteStore``, ``postgres.PostgresStore``) with
portable SQL (``?`` placeholders, ``ON CONFLICT ... DO UPDATE``, ``RETURNING``: SQLite
3.35+ and PostgreSQL alike). The policy (what counts, when a score starts again) is in
``bounce_api``'s docstring; the table is ``bounce_scores`` (SQLite migration 6,
PostgreSQL migration 2).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..domain.subscribers import email_key
from .bounce_api import BounceScore
from .sql_parts import SqlParts
from .timestamps import from_ts, to_ts

__all__ = ["BounceTables"]

_UPSERT = (
    "INSERT INTO bounce_scores (email, score, temporary, last_edition, last_permanent_at,"
    " marked_at, last_reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (email) DO UPDATE SET score = excluded.score,"
    " temporary = bounce_scores.temporary + excluded.temporary,"
    " last_edition = COALESCE(excluded.last_edition, bounce_scores.last_edition),"
    " last_permanent_at = COALESCE(excluded.last_permanent_at, bounce_scores.last_permanent_at),"
    " marked_at = excluded.marked_at,"
    " last_reason = excluded.last_reason, updated_at = excluded.updated_at"
    " RETURNING temporary"
)


class BounceTables(SqlParts):
    if TYPE_CHECKING:  # sql_subscribers.SubscriberTables, beside this mixin

        def mark_bounced(self, email: str, at: datetime, reason: str) -> None: ...

    def edition_addresses(self, edition_id: int) -> list[str]:
        if edition_id == 0:  # a confirmation mail: the sign-ups not yet confirmed
            rows = self._db.execute("SELECT DISTINCT address FROM pending_confirmations")
        else:
            rows = self._db.execute(
                "SELECT email FROM deliveries WHERE edition_id = ?", (edition_id,)
            )
        return [row[0] for row in rows]

    def delivery_for_message_id(self, message_id: str) -> tuple[int, str] | None:
        # Our Message-IDs start with the edition (domain.tokens): the primary key's range.
        edition, dot, _ = message_id.strip().lstrip("<").partition(".")
        if not dot or not edition.isdigit():
            return None
        row = self._db.execute(
            "SELECT edition_id, email FROM deliveries WHERE edition_id = ? AND message_id = ?",
            (int(edition), message_id.strip()),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def record_bounce(
        self,
        email: str,
        edition_id: int,
        *,
        permanent: bool,
        reason: str,
        now: datetime,
        threshold: int,
        reset_after: timedelta,
    ) -> BounceScore:
        key, stamp = email_key(email), to_ts(now)
        with self.transaction() as db:
            # Two processes counting bounces of one address at once (daemons sharing a
            # PostgreSQL state) must not both start from the same score: make the row
            # (an empty row counts as none) and lock it before reading it. SQLite's
            # BEGIN IMMEDIATE already serialises writers.
            db.execute(
                "INSERT INTO bounce_scores (email, updated_at) VALUES (?, ?)"
                " ON CONFLICT (email) DO NOTHING",
                (key, stamp),
            )
            old = db.execute(
                "SELECT score, last_edition, last_permanent_at, marked_at FROM bounce_scores"
                " WHERE email = ?" + self._row_lock,
                (key,),
            ).fetchone()
            status = db.execute(
                "SELECT bounced_at FROM subscribers WHERE email = ?", (key,)
            ).fetchone()
            bounced_now = status is not None and status[0] is not None
            # Marked by a score once, and not bounced now: an admin cleared it since.
            cleared = old[3] is not None and not bounced_now
            if permanent:
                score = _next_score(old, edition_id, now=now, window=reset_after, cleared=cleared)
            else:  # counted apart; the score stays (or restarts after an unbounce)
                score = 0 if cleared else old[0]
            marked = permanent and score >= threshold and not bounced_now
            marked_at = stamp if marked else (None if cleared else old[3])
            (temporary,) = db.execute(
                _UPSERT,
                (
                    key,
                    score,
                    0 if permanent else 1,
                    edition_id if permanent else None,
                    stamp if permanent else None,
                    marked_at,
                    reason,
                    stamp,
                ),
            ).fetchone()
            if marked:
                self.mark_bounced(key, now, f"{reason} ({score} permanent bounces)")
        return BounceScore(key, int(score), int(temporary), marked)


def _next_score(
    old: tuple[int, int | None, str | None, str | None],
    edition_id: int,
    *,
    now: datetime,
    window: timedelta,
    cleared: bool,
) -> int:
    """The score after one more permanent bounce of ``edition_id``."""
    if cleared or old[2] is None or from_ts(old[2]) < now - window:
        return 1  # the first; or after an unbounce; or the last one is too old to count
    score, last_edition = old[0], old[1]
    return score if last_edition == edition_id else score + 1  # one per edition
