"""The state store: SQLite (WAL) at ``<paths.state>/state.sqlite``, implementing ``Ledger``.

It records what the CSV files cannot: when an address was first seen (its
``joined_at``), unsubscribes and hard bounces (which override the files), the
editions, the delivery ledger, and every translation key ever assigned to an
address (UNIQUE, so a statement reaches a subscriber at most once, in one language).

Portability: the queries are plain SQL that PostgreSQL also runs — ``ON CONFLICT``
instead of ``INSERT OR ...``, ``RETURNING`` instead of ``lastrowid``, timestamps as
fixed-width ISO 8601 UTC text (so text order is time order), no rowid.

Durability: WAL with ``synchronous=NORMAL`` survives kill -9 of the process (the
guarantee DESIGN.md makes); only an OS crash or power cut can lose the last commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, cast

from ..domain.duplicates import SeenAddresses, Sightings
from ..domain.subscribers import Subscriber, email_key
from ..domain.web_subscribers import WEB_SOURCE, Preferences
from ..errors import StateError
from .api import Edition, LedgerCounts, PlannedDelivery
from .sqlite_dedup import SeenTable, SightingsTable
from .sqlite_deliveries import DeliveryStateMachine
from .sqlite_errors import map_sqlite_errors, translated
from .sqlite_migrations import migrate
from .sqlite_subscriber_ids import address_for_id, load_id_key, remember_ids
from .timestamps import from_ts, to_ts

__all__ = ["DB_NAME", "EditionStatus", "SqliteStore", "SubscriberState", "from_ts", "to_ts"]

DB_NAME = "state.sqlite"
CHUNK = 5000  # rows per executemany / IN list: well under both engines' parameter limits
_BLOCKED = "(s.unsubscribed_at IS NOT NULL OR s.bounced_at IS NOT NULL)"

MessageIdFor = Callable[[int, str], str]
T = TypeVar("T")


class SubscriberState(NamedTuple):
    """What planning needs to know about one address."""

    joined_at: datetime
    blocked: bool
    assigned: frozenset[str]  # translation keys already given to them (among those asked)


@dataclass(frozen=True, slots=True)
class EditionStatus:
    edition: Edition
    counts: LedgerCounts


@translated
class SqliteStore(DeliveryStateMachine):
    """The SQLite implementation of :class:`statement_feeds.state.api.Ledger`.

    One connection, used from one thread. Transactions are explicit
    (``BEGIN IMMEDIATE``) and nest: methods called inside ``plan_edition``'s
    transaction (by the deliveries generator) join it instead of committing early.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 60.0) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            self._configure()
            migrate(self._db)
            self._id_key = load_id_key(self._db)
        except (OSError, sqlite3.Error, ValueError) as exc:
            raise StateError(f"cannot open the state database {path}: {exc}") from exc
        self._depth = 0
        self._ids_json: dict[tuple[str, ...], str] = {}
        self._seen_tables = 0
        self._new_claimant()

    @classmethod
    def open(cls, state_dir: Path) -> SqliteStore:
        return cls(state_dir / DB_NAME)

    def _configure(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StateError(f"{self.path}: cannot switch to WAL mode (got {mode})")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA cache_size=-32768")  # 32 MiB: bounded, counts towards RSS
        # Temporary tables (the addresses seen while reading the lists) and big sorts
        # go to a temporary file, not to memory: peak RSS must not grow with the list.
        self._db.execute("PRAGMA temp_store=FILE")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested uses join the outermost one."""
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        with map_sqlite_errors("write"):
            self._db.execute("BEGIN IMMEDIATE")  # take the write lock now, not mid-way
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._depth = 0
                if self._db.in_transaction:  # a failed statement may have ended it already
                    self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._db.execute("COMMIT")

    # -- subscribers ---------------------------------------------------------------

    def sync_subscribers(self, emails: Iterable[str], now: datetime) -> None:
        """Record ``now`` as the join time of every address not seen before."""
        stamp = to_ts(now)
        with self.transaction() as db:
            for chunk in chunks(email_key(e) for e in emails):
                marks = ",".join("?" * len(chunk))
                known = {
                    row[0]
                    for row in db.execute(
                        f"SELECT email FROM subscribers WHERE email IN ({marks})", chunk
                    )
                }
                # Only first sightings are written (and get their subscriber id).
                new = [key for key in dict.fromkeys(chunk) if key not in known]
                db.executemany(
                    "INSERT INTO subscribers (email, joined_at) VALUES (?, ?)"
                    " ON CONFLICT (email) DO NOTHING",
                    [(key, stamp) for key in new],
                )
                self._remember_ids(new)

    @contextmanager
    def seen_addresses(self) -> Iterator[SeenAddresses]:
        """A fresh, empty :class:`SeenAddresses` in a TEMP table, dropped on exit.

        For ``core.duplicates.Deduplicator`` over big lists: the table lives in a
        temporary file (``temp_store=FILE``) with a bounded page cache, so memory
        does not grow with the number of addresses. Inside a transaction it joins it.
        """
        self._seen_tables += 1  # a name per use: two readers at once do not collide
        name = f"seen_addresses_{self._seen_tables}"
        self._db.execute(
            f"CREATE TEMP TABLE {name}"
            " (email TEXT PRIMARY KEY, place INTEGER NOT NULL) WITHOUT ROWID"
        )
        try:
            yield SeenTable(self._db, f"temp.{name}")
        finally:
            # IF EXISTS: a rolled-back transaction already took the table with it.
            # A reader abandoned until after close() finds the table gone with it.
            with suppress(sqlite3.ProgrammingError):
                self._db.execute(f"DROP TABLE IF EXISTS temp.{name}")

    def sightings(self, now: datetime, *, record: bool = True) -> Sightings:
        """When each address was first seen in each file; pairs new ``now`` are recorded.

        ``record=False`` only reads (a dry run). Who keeps an address listed twice:
        see ``core.duplicates``.
        """
        return SightingsTable(self._db, to_ts(now), record=record)

    def subscriber_states(
        self, emails: Sequence[str], translation_keys: Collection[str]
    ) -> dict[str, SubscriberState]:
        """Join time, blocked flag and assigned keys (among ``translation_keys``) by email key.

        Addresses the store has never seen are absent from the result.
        """
        keys = [email_key(e) for e in emails]
        wanted = list(translation_keys)
        found: dict[str, tuple[str, bool]] = {}
        assigned: dict[str, set[str]] = {}
        for chunk in chunks(keys):
            marks = ",".join("?" * len(chunk))
            for email, joined, blocked in self._db.execute(
                "SELECT s.email, s.joined_at, " + _BLOCKED + " FROM subscribers s"
                f" WHERE s.email IN ({marks})",
                chunk,
            ):
                found[email] = (joined, bool(blocked))
            if wanted:
                self._assigned_into(assigned, chunk, wanted)
        times: dict[str, datetime] = {}  # most rows share a join time: parse each once
        return {
            email: SubscriberState(
                times.get(joined) or times.setdefault(joined, from_ts(joined)),
                blocked,
                frozenset(assigned.get(email, ())),
            )
            for email, (joined, blocked) in found.items()
        }

    def _assigned_into(
        self, assigned: dict[str, set[str]], emails: list[str], wanted: list[str]
    ) -> None:
        for keys in chunks(wanted, CHUNK):
            sql = (
                "SELECT email_key, translation_key FROM assigned"
                f" WHERE email_key IN ({','.join('?' * len(emails))})"
                f" AND translation_key IN ({','.join('?' * len(keys))})"
            )
            for email, key in self._db.execute(sql, [*emails, *keys]):
                assigned.setdefault(email, set()).add(key)

    # -- subscriber ids (the opaque ids in links: adapters.subscriber_ids) ----------

    def subscriber_id_key(self) -> bytes:
        return self._id_key

    def _remember_ids(self, keys: Sequence[str]) -> None:
        remember_ids(self._db, self._id_key, keys)

    def remember_address_id(self, email: str) -> None:
        """Map ``email``'s subscriber id, for an address the store may not know yet."""
        with self.transaction():
            self._remember_ids([email_key(email)])

    def address_for_id(self, sid: str) -> str | None:
        """The email key behind a subscriber id from a link, if the store knows it."""
        return address_for_id(self._db, sid)

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

    # -- editions ------------------------------------------------------------------

    def edition_for(self, frequency: str, due_at: datetime) -> Edition | None:
        row = self._db.execute(
            "SELECT id, frequency, due_at, planned_at, deliveries FROM editions"
            " WHERE frequency = ? AND due_at = ?",
            (frequency, to_ts(due_at)),
        ).fetchone()
        return None if row is None else _edition(row)

    def plan_edition(
        self,
        frequency: str,
        due_at: datetime,
        planned_at: datetime,
        deliveries: Iterable[PlannedDelivery],
        message_id_for: object,
    ) -> Edition:
        """Record a whole edition in one transaction; an existing one is returned as is.

        ``deliveries`` is consumed inside the transaction, so it may be a generator
        that calls this store (``sync_subscribers``, ``subscriber_states``). If it or
        ``message_id_for`` raises, nothing of the edition is recorded.
        """
        if not callable(message_id_for):
            raise TypeError("message_id_for must be a callable (edition_id, email) -> str")
        make_id = cast(MessageIdFor, message_id_for)
        # The page cache stays at its bounded 32 MiB: a bigger one for big editions
        # made peak RSS grow with the list (and bought little time).
        return self._plan(frequency, due_at, planned_at, deliveries, make_id)

    def _plan(
        self,
        frequency: str,
        due_at: datetime,
        planned_at: datetime,
        deliveries: Iterable[PlannedDelivery],
        make_id: MessageIdFor,
    ) -> Edition:
        with self.transaction() as db:
            existing = self.edition_for(frequency, due_at)
            if existing is not None:
                return existing
            planned = to_ts(planned_at)
            row = db.execute(
                "INSERT INTO editions (frequency, due_at, planned_at) VALUES (?, ?, ?)"
                " ON CONFLICT (frequency, due_at) DO NOTHING RETURNING id",
                (frequency, to_ts(due_at), planned),
            ).fetchone()
            edition_id = int(row[0])
            total = 0
            for chunk in chunks(deliveries):
                total += self._insert_deliveries(edition_id, planned, chunk, make_id)
            db.execute("UPDATE editions SET deliveries = ? WHERE id = ?", (total, edition_id))
        return Edition(edition_id, frequency, due_at, planned_at, total)

    def _insert_deliveries(
        self, edition_id: int, planned: str, chunk: list[PlannedDelivery], make_id: MessageIdFor
    ) -> int:
        rows: list[tuple[Any, ...]] = []
        keys: list[tuple[str, str, int]] = []
        for item in chunk:
            key = email_key(item.email)
            message_id = make_id(edition_id, item.email)
            ids = self._json(item.statement_ids)
            rows.append((key, edition_id, item.email, item.name, item.lang, ids, message_id))
            keys.extend((key, tk, edition_id) for tk in item.translation_keys)
        # Key order makes the B-tree inserts sequential within the chunk.
        rows.sort(key=lambda row: row[0])
        keys.sort()
        self._db.executemany(
            "INSERT INTO deliveries (email_key, edition_id, email, name, lang, statement_ids,"
            " message_id, state, next_attempt_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            [(*row, planned, planned) for row in rows],
        )
        # No ON CONFLICT on purpose: assigning a key twice is a bug and must abort the plan.
        self._db.executemany(
            "INSERT INTO assigned (email_key, translation_key, edition_id) VALUES (?, ?, ?)", keys
        )
        return len(rows)

    def _json(self, ids: tuple[str, ...]) -> str:
        # Few distinct digests per edition: encode each once.
        text = self._ids_json.get(ids)
        if text is None:
            if len(self._ids_json) > 10_000:
                self._ids_json.clear()
            text = self._ids_json[ids] = json.dumps(list(ids), ensure_ascii=False)
        return text

    def editions(self, limit: int = 20) -> list[EditionStatus]:
        """The latest editions, newest due time first, with per-state delivery counts."""
        rows = self._db.execute(
            "SELECT id, frequency, due_at, planned_at, deliveries FROM editions"
            " ORDER BY due_at DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [EditionStatus(_edition(row), self.counts(int(row[0]))) for row in rows]

    def retry_failed(self, edition_id: int | None = None, now: datetime | None = None) -> int:
        """``failed`` → ``pending``, due at once, except for bounced or unsubscribed addresses.

        ``first_attempt_at`` and ``attempts`` are cleared so that the retry lifetime
        and the backoff start afresh (else the first retry would wait the longest step).
        """
        stamp = None if now is None else to_ts(now)
        with self.transaction() as db:
            return db.execute(
                "UPDATE deliveries SET state = 'pending', first_attempt_at = NULL, attempts = 0,"
                " next_attempt_at = updated_at, updated_at = COALESCE(?, updated_at)"
                " WHERE state = 'failed' AND (? IS NULL OR edition_id = ?)"
                " AND NOT EXISTS (SELECT 1 FROM subscribers s"
                " WHERE s.email = deliveries.email_key AND " + _BLOCKED + ")",
                (stamp, edition_id, edition_id),
            ).rowcount

    # -- web side (issue 5): sign-ups, web subscribers, preferences, rate limits ----

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
        """What planning merges into the CSV list (see core.web_subscribers)."""
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

    def edition_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM editions").fetchone()[0])

    def subscriber_status(self, emails: Sequence[str]) -> dict[str, tuple[datetime, str]]:
        """email key → (joined_at, "active" | "unsubscribed" | "bounced") for known ones."""
        out: dict[str, tuple[datetime, str]] = {}
        for chunk in chunks([email_key(e) for e in emails]):
            marks = ",".join("?" * len(chunk))
            for key, joined, unsub, bounced in self._db.execute(
                "SELECT email, joined_at, unsubscribed_at, bounced_at FROM subscribers"
                f" WHERE email IN ({marks})",
                chunk,
            ):
                state = "bounced" if bounced else "unsubscribed" if unsub else "active"
                out[key] = (from_ts(joined), state)
        return out


_BLOCKED_ROW = "(subscribers.unsubscribed_at IS NOT NULL OR subscribers.bounced_at IS NOT NULL)"


def _web_subscriber(address: str, name: str, languages: str, frequency: str) -> Subscriber:
    return Subscriber(address, name, tuple(languages.split()), frequency, WEB_SOURCE)


def _edition(row: Any) -> Edition:
    return Edition(int(row[0]), row[1], from_ts(row[2]), from_ts(row[3]), int(row[4]))


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
