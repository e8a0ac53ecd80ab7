"""Addresses in the state database: join times, unsubscribes, bounces, assigned keys.

A mixin of both stores (``sqlite.SqliteStore``, ``postgres.PostgresStore``)
implementing ``api.SubscriberStore``. The
``subscribers`` row of an address records what the CSV files cannot: when it was
first seen (its ``joined_at``) and whether it unsubscribed or bounced (which
override the files); ``assigned`` holds every translation key it was ever given.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from ..domain.duplicates import SeenAddresses, Sightings
from ..domain.subscribers import email_key
from .api import SubscriberState
from .batches import CHUNK, chunks
from .sql_corrections import NOTHING_MAILED as _NOTHING_MAILED
from .sql_corrections import mailed_versions
from .sql_dedup import SeenTable, SightingsTable
from .sql_parts import BLOCKED as _BLOCKED
from .sql_parts import SqlParts
from .timestamps import from_ts, to_ts

__all__ = ["SubscriberTables"]

# Read whole histories when the wanted keys are at least 1/4 of the keys ever assigned:
# an address then holds at most four times the rows wanted (sql_subscribers._whole_histories).
_WHOLE_HISTORY_RATIO = 4
_NOTHING_ASSIGNED: frozenset[str] = frozenset()


class SubscriberTables(SqlParts):
    _seen_tables: int  # TEMP tables made so far by seen_addresses (for unique names)

    def sync_subscribers(self, emails: Iterable[str], now: datetime) -> None:
        """Record ``now`` as the join time of every address not seen before.

        One transaction: ``emails`` is consumed inside it, so it may be a generator
        that uses this store (its sightings and seen addresses join the transaction).
        """
        stamp = to_ts(now)
        with self.transaction() as db:
            for chunk in chunks(email_key(e) for e in emails):
                where, params = self._dialect.in_list("email", chunk)
                known = {
                    row[0]
                    for row in db.execute(f"SELECT email FROM subscribers WHERE {where}", params)
                }
                # Only first sightings are written (and get their subscriber id).
                new = [key for key in dict.fromkeys(chunk) if key not in known]
                self._dialect.insert_many(
                    db,
                    "subscribers",
                    (("email", "text"), ("joined_at", "text")),
                    [(key, stamp) for key in new],
                    "ON CONFLICT (email) DO NOTHING",
                )
                self._remember_ids(new)

    @contextmanager
    def seen_addresses(self) -> Iterator[SeenAddresses]:
        """A fresh, empty :class:`SeenAddresses` in a TEMP table, dropped on exit.

        For ``domain.duplicates.Deduplicator`` over big lists: the table lives on disk
        (SQLite: ``temp_store=FILE`` with a bounded page cache; PostgreSQL: the
        session's temporary tables), so memory does not grow with the number of
        addresses. Inside a transaction it joins it.
        """
        self._seen_tables += 1  # a name per use: two readers at once do not collide
        name = f"seen_addresses_{self._seen_tables}"
        self._db.execute(
            f"CREATE TEMP TABLE {name}"
            # BIGINT: a place is file number << 32 | line (PostgreSQL's INTEGER is 32 bits,
            # and the second file's rows overflowed it; SQLite's INTEGER is 64 anyway).
            " (email TEXT PRIMARY KEY, place BIGINT NOT NULL)" + self._table_options
        )
        try:
            yield SeenTable(self._db, f"{self._temp_schema}.{name}", self._dialect)
        finally:
            self._drop_temp(f"{self._temp_schema}.{name}")

    def sightings(self, now: datetime, *, record: bool = True) -> Sightings:
        """When each address was first seen in each file; pairs new ``now`` are recorded.

        ``record=False`` only reads (a dry run). Who keeps an address listed twice:
        see ``domain.duplicates``.
        """
        return SightingsTable(self._db, to_ts(now), record=record, dialect=self._dialect)

    def subscriber_states(
        self,
        emails: Sequence[str],
        translation_keys: Collection[str],
        corrected_keys: Collection[str] = (),
    ) -> dict[str, SubscriberState]:
        """Join time, blocked flag and assigned keys (among ``translation_keys``) by email key,
        and what was mailed of ``corrected_keys`` (``sql_corrections``).

        Addresses the store has never seen are absent from the result.
        """
        keys = [email_key(e) for e in emails]
        wanted = list(translation_keys)
        found: dict[str, tuple[str, bool]] = {}
        assigned: dict[str, frozenset[str]] = {}
        mailed = mailed_versions(self._db, keys, list(corrected_keys)) if corrected_keys else {}
        whole = bool(wanted) and self._whole_histories(len(wanted))
        for chunk in chunks(keys):
            where, params = self._dialect.in_list("s.email", chunk)
            for email, joined, blocked in self._db.execute(
                "SELECT s.email, s.joined_at, " + _BLOCKED + f" FROM subscribers s WHERE {where}",
                params,
            ).fetchall():  # not a row at a time (sql_dedup.SightingsTable.first_seen)
                found[email] = (joined, bool(blocked))
            if wanted:
                assigned.update(self._assigned(chunk, wanted, whole=whole))
        times: dict[str, datetime] = {}  # most rows share a join time: parse each once
        return {
            email: SubscriberState(
                times.get(joined) or times.setdefault(joined, from_ts(joined)),
                blocked,
                assigned.get(email, _NOTHING_ASSIGNED),
                mailed.get(email, _NOTHING_MAILED),
            )
            for email, (joined, blocked) in found.items()
        }

    def ever_assigned(self, translation_keys: Collection[str]) -> frozenset[str]:
        """Those of ``translation_keys`` assigned to anyone, ever (``assigned_keys``).

        A key outside it is in no address's history: planning asks the per-address
        look-up of ``subscriber_states`` about the others only.
        """
        found: set[str] = set()
        for chunk in chunks(sorted(translation_keys)):
            where, params = self._dialect.in_list("translation_key", chunk)
            sql = f"SELECT translation_key FROM assigned_keys WHERE {where}"
            found.update(row[0] for row in self._db.execute(sql, params))
        return frozenset(found)

    def _whole_histories(self, wanted: int) -> bool:
        """Whether to read each address's whole history rather than probe every (address,
        wanted key) pair: when the wanted keys are most of the keys ever assigned (the
        edition after one that gave the same statements), an address holds little else,
        and one index descent per address beats one per pair (PostgreSQL 15 and SQLite
        descend the primary key once per pair). On a long-lived site, where an address
        holds many more keys than are wanted now, the pairs are cheaper."""
        row = self._db.execute("SELECT COUNT(*) FROM assigned_keys").fetchone()
        return wanted * _WHOLE_HISTORY_RATIO >= int(row[0])

    def _assigned(
        self, emails: list[str], wanted: list[str], *, whole: bool
    ) -> dict[str, frozenset[str]]:
        """Which of ``wanted`` each of ``emails`` was given (only those given any)."""
        assigned: dict[str, set[str]] = {}
        if whole:
            self._histories_into(assigned, emails, set(wanted))
        else:
            self._assigned_into(assigned, emails, wanted)
        return {email: frozenset(keys) for email, keys in assigned.items()}

    def _histories_into(
        self, assigned: dict[str, set[str]], emails: list[str], wanted: set[str]
    ) -> None:
        where, params = self._dialect.in_list("email_key", emails)
        sql = f"SELECT email_key, translation_key FROM assigned WHERE {where}"
        for email, key in self._db.execute(sql, params):
            if key in wanted:
                assigned.setdefault(email, set()).add(key)

    def _assigned_into(
        self, assigned: dict[str, set[str]], emails: list[str], wanted: list[str]
    ) -> None:
        by_email, email_params = self._dialect.in_list("email_key", emails)
        for keys in chunks(wanted, CHUNK):
            by_key, key_params = self._dialect.in_list("translation_key", keys)
            sql = f"SELECT email_key, translation_key FROM assigned WHERE {by_email} AND {by_key}"
            for email, key in self._db.execute(sql, [*email_params, *key_params]):
                assigned.setdefault(email, set()).add(key)

    def joined_at(self, email: str) -> datetime | None:
        row = self._db.execute(
            "SELECT joined_at FROM subscribers WHERE email = ?", (email_key(email),)
        ).fetchone()
        return None if row is None else from_ts(row[0])

    def assigned_keys(self, email: str) -> set[str]:
        """Every translation key ever assigned to ``email``."""
        rows = self._db.execute(
            "SELECT translation_key FROM assigned WHERE email_key = ?", (email_key(email),)
        )
        return {row[0] for row in rows}

    def unsubscribe(self, email: str, at: datetime) -> bool:
        """Block ``email`` from now on (overrides the CSV files); False if it already was."""
        key, stamp = email_key(email), to_ts(at)
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO subscribers (email, joined_at, unsubscribed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (email) DO UPDATE SET unsubscribed_at ="
                " COALESCE(subscribers.unsubscribed_at, excluded.unsubscribed_at)"
                " RETURNING unsubscribed_at",
                (key, stamp, stamp),
            ).fetchone()
            self._remember_ids([key])
            self._cancel_address(key, stamp, "unsubscribed")
        return bool(row[0] == stamp)

    def mark_bounced(self, email: str, at: datetime, reason: str) -> None:
        """A hard bounce: the address gets nothing more until an admin intervenes."""
        key, stamp = email_key(email), to_ts(at)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO subscribers (email, joined_at, bounced_at, bounce_reason)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET"
                " bounced_at = COALESCE(subscribers.bounced_at, excluded.bounced_at),"
                " bounce_reason = COALESCE(subscribers.bounce_reason, excluded.bounce_reason)",
                (key, stamp, stamp, reason),
            )
            self._remember_ids([key])
            self._cancel_address(key, stamp, "bounced")

    def clear_bounce(self, email: str) -> bool:
        """An admin says the address works again (e.g. a mailbox that was full).

        Unsubscribes are never cleared here: only the person can subscribe again (web
        sign-up with confirmation). True if a bounce was cleared.
        """
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE subscribers SET bounced_at = NULL, bounce_reason = NULL"
                    " WHERE email = ? AND bounced_at IS NOT NULL",
                    (email_key(email),),
                ).rowcount
                > 0
            )

    def is_blocked(self, email: str) -> bool:
        row = self._db.execute(
            "SELECT " + _BLOCKED + " FROM subscribers s WHERE s.email = ?", (email_key(email),)
        ).fetchone()
        return bool(row and row[0])

    def _cancel_address(self, key: str, stamp: str, why: str) -> None:
        self._db.execute(
            "UPDATE deliveries SET state = 'cancelled', last_error = ?, updated_at = ?"
            " WHERE email_key = ? AND state IN ('pending', 'deferred')",
            (why, stamp, key),
        )

    def subscriber_status(self, emails: Sequence[str]) -> dict[str, tuple[datetime, str]]:
        """email key → (joined_at, "active" | "unsubscribed" | "bounced") for known ones."""
        out: dict[str, tuple[datetime, str]] = {}
        for chunk in chunks([email_key(e) for e in emails]):
            where, params = self._dialect.in_list("email", chunk)
            for key, joined, unsub, bounced in self._db.execute(
                "SELECT email, joined_at, unsubscribed_at, bounced_at FROM subscribers"
                f" WHERE {where}",
                params,
            ):
                state = "bounced" if bounced else "unsubscribed" if unsub else "active"
                out[key] = (from_ts(joined), state)
        return out
