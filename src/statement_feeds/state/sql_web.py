"""The web side in the state database (issue 5): sign-ups, web subscribers, preferences,
rate limits and subscriber ids.

A mixin of both stores (``sqlite.SqliteStore``, ``postgres.PostgresStore``)
implementing ``api.WebSignups`` (and the subscriber
totals of ``api.StoreMetrics``, which count web subscribers).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..domain.subscribers import Subscriber, email_key
from ..domain.web_subscribers import WEB_SOURCE, Preferences
from .sql_parts import BLOCKED as _BLOCKED
from .sql_parts import SqlParts
from .sql_subscriber_ids import address_for_id
from .timestamps import to_ts

__all__ = ["WebTables"]


class WebTables(SqlParts):
    # -- subscriber ids (the opaque ids in links: domain.tokens.subscriber_id) -------

    def subscriber_id_key(self) -> bytes:
        return self._id_key

    def remember_address_id(self, email: str) -> None:
        """Map ``email``'s subscriber id, for an address the store may not know yet."""
        with self.transaction():
            self._remember_ids([email_key(email)])

    def address_for_id(self, sid: str) -> str | None:
        """The email key behind a subscriber id from a link, if the store knows it."""
        return address_for_id(self._db, sid)

    # -- sign-ups, web subscribers, preferences, rate limits ----------------------------

    def add_confirmation(
        self, token_id: str, address: str, prefs: Preferences, now: datetime, expires: datetime
    ) -> None:
        """Record a sign-up waiting for its confirmation link (expired ones are pruned)."""
        with self.transaction() as db:
            db.execute("DELETE FROM pending_confirmations WHERE expires_at < ?", (to_ts(now),))
            db.execute(
                "INSERT INTO pending_confirmations (id, email, address, languages, frequency,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token_id,
                    email_key(address),
                    address,
                    " ".join(prefs.languages),
                    prefs.frequency,
                    to_ts(now),
                    to_ts(expires),
                ),
            )

    def confirm_subscription(self, token_id: str, now: datetime) -> Subscriber | None:
        """Use a pending sign-up once: the address becomes an active web subscriber.

        None when the id is unknown, expired or already used. Confirming clears an
        earlier unsubscribe or bounce (the person just proved the address works and
        asked again) and then counts as joining now, so nothing older is mailed.
        """
        stamp = to_ts(now)
        with self.transaction() as db:
            row = db.execute(
                "UPDATE pending_confirmations SET consumed_at = ?"
                " WHERE id = ? AND consumed_at IS NULL AND expires_at > ?"
                " RETURNING email, address, languages, frequency",
                (stamp, token_id, stamp),
            ).fetchone()
            if row is None:
                return None
            key, address, languages, frequency = row
            db.execute(
                "INSERT INTO subscribers (email, joined_at) VALUES (?, ?)"
                " ON CONFLICT (email) DO UPDATE SET joined_at = CASE WHEN "
                + _BLOCKED_ROW
                + " THEN excluded.joined_at ELSE subscribers.joined_at END,"
                " unsubscribed_at = NULL, bounced_at = NULL, bounce_reason = NULL",
                (key, stamp),
            )
            self._remember_ids([key])
            db.execute(
                "INSERT INTO web_subscribers (email, address, languages, frequency,"
                " confirmed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (email) DO UPDATE SET address = excluded.address,"
                " languages = excluded.languages, frequency = excluded.frequency,"
                " updated_at = excluded.updated_at",
                (key, address, languages, frequency, stamp, stamp),
            )
        return _web_subscriber(address, "", languages, frequency)

    def web_subscribers(self, *, include_blocked: bool = False) -> dict[str, Subscriber]:
        """Confirmed web subscribers by email key (``source`` is ``"web"``)."""
        sql = (
            "SELECT w.email, w.address, w.name, w.languages, w.frequency FROM web_subscribers w"
            " LEFT JOIN subscribers s ON s.email = w.email"
        )
        if not include_blocked:
            sql += " WHERE NOT (COALESCE(" + _BLOCKED + ", FALSE))"
        rows = self._db.execute(sql + " ORDER BY w.email")
        return {key: _web_subscriber(a, n, langs, freq) for key, a, n, langs, freq in rows}

    def preference_overrides(self) -> dict[str, Preferences]:
        """Languages and frequency chosen on the preferences page by CSV subscribers."""
        rows = self._db.execute("SELECT email, languages, frequency FROM preference_overrides")
        return {key: Preferences(tuple(langs.split()), freq) for key, langs, freq in rows}

    def web_subscriber_view(self) -> tuple[dict[str, Subscriber], dict[str, Preferences]]:
        """What planning merges into the CSV list (see domain.web_subscribers)."""
        return self.web_subscribers(), self.preference_overrides()

    def preferences_for(self, email: str) -> Preferences | None:
        """An address's stored choice: its web subscription, else its override."""
        key = email_key(email)
        for table in ("web_subscribers", "preference_overrides"):
            row = self._db.execute(
                f"SELECT languages, frequency FROM {table} WHERE email = ?", (key,)
            ).fetchone()
            if row is not None:
                return Preferences(tuple(row[0].split()), row[1])
        return None

    def set_preferences(self, email: str, prefs: Preferences, now: datetime) -> None:
        """Web subscribers: update their row. Anyone else: an override for planning."""
        key, stamp, languages = email_key(email), to_ts(now), " ".join(prefs.languages)
        with self.transaction() as db:
            updated = db.execute(
                "UPDATE web_subscribers SET languages = ?, frequency = ?, updated_at = ?"
                " WHERE email = ?",
                (languages, prefs.frequency, stamp, key),
            ).rowcount
            if not updated:
                db.execute(
                    "INSERT INTO preference_overrides (email, languages, frequency, updated_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET"
                    " languages = excluded.languages, frequency = excluded.frequency,"
                    " updated_at = excluded.updated_at",
                    (key, languages, prefs.frequency, stamp),
                )

    def hit_rate_limit(self, bucket: str, now: datetime, window: timedelta, limit: int) -> bool:
        """Count one action in ``bucket``; True (and not counted) if ``limit`` is reached.

        A sliding window: actions older than ``window`` no longer count (and are deleted).
        """
        stamp, since = to_ts(now), to_ts(now - window)
        kind = bucket.partition(":")[0] + ":"
        with self.transaction() as db:
            # Every expired event of this kind of bucket, not only this bucket's: a client
            # that never comes back must not leave its rows behind (one per request) for
            # good. By the time index (migration 7), so only expired rows are visited.
            db.execute(
                "DELETE FROM rate_events WHERE at <= ? AND substr(bucket, 1, ?) = ?",
                (since, len(kind), kind),
            )
            used = db.execute(
                "SELECT COUNT(*) FROM rate_events WHERE bucket = ?", (bucket,)
            ).fetchone()[0]
            if int(used) >= limit:
                return True
            db.execute("INSERT INTO rate_events (bucket, at) VALUES (?, ?)", (bucket, stamp))
        return False

    def subscriber_totals(self) -> dict[str, int]:
        """Counts for /metrics: addresses known, unsubscribed, bounced, web (active)."""
        known, unsubscribed, bounced = self._db.execute(
            "SELECT COUNT(*), COUNT(unsubscribed_at), COUNT(bounced_at) FROM subscribers"
        ).fetchone()
        web = len(self.web_subscribers())
        overrides = self._db.execute("SELECT COUNT(*) FROM preference_overrides").fetchone()[0]
        return {
            "known": int(known),
            "unsubscribed": int(unsubscribed),
            "bounced": int(bounced),
            "web": web,
            "overrides": int(overrides),
        }


_BLOCKED_ROW = "(subscribers.unsubscribed_at IS NOT NULL OR subscribers.bounced_at IS NOT NULL)"


def _web_subscriber(address: str, name: str, languages: str, frequency: str) -> Subscriber:
    return Subscriber(address, name, tuple(languages.split()), frequency, WEB_SOURCE)
