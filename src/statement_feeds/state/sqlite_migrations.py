"""Versioned schema migrations for the state database.

Each migration is a function registered with its version number (in the manner
of sqlite-utils' migrations). ``migrate`` applies the ones not yet recorded in
``schema_migrations``, each in its own transaction together with its record, so
a crash mid-migration leaves the previous version intact.

This is the SQLite backend's own list: versions 1, 2, 3, ... without gaps, in the
order they apply (another backend keeps its own list, with its own numbers). A
database whose ``schema_migrations`` holds a version above the last one here was made
by a newer statement-feeds: it is refused with a ``StateError``, never half-used.

Renumbering (issue 11). The versions used to be 1, 5, 6, 7, 8 (2-4 were left free for
work in flight that never came), so databases in the field record {1, 5} or
{1, 5, 6, 7, 8}. Those are the migrations now numbered 1-5, so such a database has
its recorded numbers translated once (5→2, 6→3, 7→4, 8→5, ``applied_at`` kept), in one
transaction, before anything else: see :func:`_renumber`. An old-numbered database is
recognised by recording a version above 1 but not 2, which the gapless numbering
never does (migrations are applied in order, each committed with its record).

The DDL sticks to what PostgreSQL accepts too: TEXT timestamps in ISO 8601 UTC,
plain primary keys and partial indexes (both engines have them).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from ..errors import StateError
from .sql_subscriber_ids import remember_ids

__all__ = [
    "MIGRATIONS",
    "OLD_NUMBERS",
    "Migration",
    "applied_versions",
    "migrate",
    "migration",
]

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[int, Migration]] = []


# The numbers before issue 11 → the numbers now (see the module docstring).
OLD_NUMBERS: dict[int, int] = {1: 1, 5: 2, 6: 3, 7: 4, 8: 5}


def migration(version: int) -> Callable[[Migration], Migration]:
    """Register ``function`` as the migration to schema ``version``, the next number."""

    def register(function: Migration) -> Migration:
        expected = len(MIGRATIONS) + 1
        if version != expected:  # a gap or a duplicate would break the refusal check
            raise ValueError(f"migration {version} registered where {expected} is next")
        MIGRATIONS.append((version, function))
        return function

    return register


def applied_versions(conn: sqlite3.Connection) -> list[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def _is_old_numbering(versions: set[int]) -> bool:
    return 2 not in versions and any(version > 1 for version in versions)


def _renumber(conn: sqlite3.Connection) -> None:
    """Translate a database's versions from the numbering before issue 11, once."""
    if not _is_old_numbering(set(applied_versions(conn))):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        versions = set(applied_versions(conn))  # another process may have done it meanwhile
        if _is_old_numbering(versions) and versions <= OLD_NUMBERS.keys():
            # Ascending, so each new number is free when it is taken (new < old).
            for old in sorted(versions):
                conn.execute(
                    "UPDATE schema_migrations SET version = ? WHERE version = ?",
                    (OLD_NUMBERS[old], old),
                )
        # A version the old numbering never had: from a newer statement-feeds, left as
        # it is for _refuse_newer to report.
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _refuse_newer(conn: sqlite3.Connection, versions: set[int]) -> None:
    """StateError when the database records a version this code does not know."""
    known = len(MIGRATIONS)
    unknown = sorted(version for version in versions if not 1 <= version <= known)
    if unknown:
        path = conn.execute("PRAGMA database_list").fetchone()[2] or "(in memory)"
        raise StateError(
            f"the state database {path} has schema version {unknown[-1]}, but this "
            f"statement-feeds knows versions 1-{known} only: it was used by a newer "
            "statement-feeds; upgrade statement-feeds to use it"
        )


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations; returns the versions applied now. Needs autocommit mode.

    Raises ``StateError`` when the database is newer than this code.
    """
    _renumber(conn)
    done = set(applied_versions(conn))
    _refuse_newer(conn, done)
    applied: list[int] = []
    for version, function in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            again = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone()
            if again is None:
                function(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, datetime.now(UTC).isoformat()),
                )
                applied.append(version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied


@migration(1)
def _initial(conn: sqlite3.Connection) -> None:
    # subscribers: what the store knows about an address beyond the CSV files.
    # email is the case-folded key (core.subscribers.email_key).
    conn.execute(
        """CREATE TABLE subscribers (
            email TEXT PRIMARY KEY,
            joined_at TEXT NOT NULL,
            unsubscribed_at TEXT,
            bounced_at TEXT,
            bounce_reason TEXT
        )"""
    )
    conn.execute(
        """CREATE TABLE editions (
            id INTEGER PRIMARY KEY,
            frequency TEXT NOT NULL,
            due_at TEXT NOT NULL,
            planned_at TEXT NOT NULL,
            deliveries INTEGER NOT NULL DEFAULT 0,
            UNIQUE (frequency, due_at)
        )"""
    )
    # WITHOUT ROWID: the primary key is the table, one B-tree fewer to write per
    # delivery (a table option only; PostgreSQL's DDL omits it). Keyed by edition
    # first so that an edition's rows are one range (counts, status).
    conn.execute(
        """CREATE TABLE deliveries (
            edition_id INTEGER NOT NULL REFERENCES editions (id),
            email_key TEXT NOT NULL,
            email TEXT NOT NULL,
            name TEXT NOT NULL,
            lang TEXT NOT NULL,
            statement_ids TEXT NOT NULL,
            message_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('pending', 'sending', 'sent', 'deferred', 'failed', 'cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            first_attempt_at TEXT,
            next_attempt_at TEXT NOT NULL,
            last_code INTEGER,
            last_error TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (edition_id, email_key)
        ) WITHOUT ROWID"""
    )
    # Cancelling an address's open deliveries (unsubscribe, bounce) by index.
    conn.execute("CREATE INDEX deliveries_email ON deliveries (email_key)")
    # Only due-able rows are indexed, so claim walks them in due order cheaply.
    conn.execute(
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at)"
        " WHERE state IN ('pending', 'deferred')"
    )
    # Every translation key ever assigned to an address: the UNIQUE key is what
    # makes "each statement once per subscriber, in one language" a hard rule.
    conn.execute(
        """CREATE TABLE assigned (
            email_key TEXT NOT NULL,
            translation_key TEXT NOT NULL,
            edition_id INTEGER NOT NULL REFERENCES editions (id),
            PRIMARY KEY (email_key, translation_key)
        )"""
        # Key-only rows: WITHOUT ROWID stores them once, in the key's B-tree (half
        # the size and writes). Table option only; PostgreSQL's DDL omits it.
        " WITHOUT ROWID"
    )


@migration(2)
def _web_side(conn: sqlite3.Connection) -> None:
    # Version 2, 5 before issue 11 (issue 5, the web side).
    #
    # Subscribers who joined through the web form, once confirmed (double opt-in).
    # email is the case-folded key; address is as typed. confirmed_at is their
    # join time (also written to subscribers.joined_at).
    conn.execute(
        """CREATE TABLE web_subscribers (
            email TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            languages TEXT NOT NULL,
            frequency TEXT NOT NULL,
            confirmed_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    # Preferences a CSV subscriber chose on the preferences page: the files are never
    # edited, so planning applies these on top of them.
    conn.execute(
        """CREATE TABLE preference_overrides (
            email TEXT PRIMARY KEY,
            languages TEXT NOT NULL,
            frequency TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    # Sign-ups waiting for their confirmation link; consumed_at makes a link single-use.
    conn.execute(
        """CREATE TABLE pending_confirmations (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            address TEXT NOT NULL,
            languages TEXT NOT NULL,
            frequency TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            consumed_at TEXT
        )"""
    )
    conn.execute("CREATE INDEX pending_confirmations_expiry ON pending_confirmations (expires_at)")
    # One row per counted action; bucket is a hash (an address or client IP is not
    # kept in the clear for people who never confirmed).
    conn.execute(
        """CREATE TABLE rate_events (
            id INTEGER PRIMARY KEY,
            bucket TEXT NOT NULL,
            at TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX rate_events_bucket ON rate_events (bucket, at)")


@migration(3)
def _claims(conn: sqlite3.Connection) -> None:
    # Version 3, 6 before issue 11 (hardening): a claim reserves a delivery for one
    # sender (claimed_by) until claim_until, without moving it to 'sending'; 'sending'
    # now means handed to SMTP, so after a crash only the messages in flight have an
    # unknown fate.
    conn.execute("ALTER TABLE deliveries ADD COLUMN claimed_by TEXT")
    conn.execute("ALTER TABLE deliveries ADD COLUMN claim_until TEXT")


@migration(4)
def _subscriber_ids(conn: sqlite3.Connection) -> None:
    # Version 4, 7 before issue 11 (hardening issue, item 14): links carry an opaque
    # subscriber id, never the address.
    #
    # settings: small named values of the state itself. subscriber_id_key is the key
    # of core.tokens.subscriber_id, random, made here once and never rotated: ids in
    # links already mailed must keep resolving. It authorises nothing (the signing
    # keys' MAC does); it only keeps an id from being computed from an address.
    conn.execute("CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    id_key = secrets.token_hex(32)
    conn.execute("INSERT INTO settings (name, value) VALUES ('subscriber_id_key', ?)", (id_key,))
    # id → email key, for every address the store knows (the store adds a row with
    # every address it records; here, every address recorded so far).
    conn.execute(
        "CREATE TABLE subscriber_ids (id TEXT PRIMARY KEY, email TEXT NOT NULL) WITHOUT ROWID"
    )
    rows = conn.execute("SELECT email FROM subscribers")
    while batch := rows.fetchmany(5000):
        remember_ids(conn, bytes.fromhex(id_key), [email for (email,) in batch])
    # Rate-limit events are pruned by age across all buckets (not only the bucket
    # being hit), so buckets of clients that never come back do not pile up.
    conn.execute("CREATE INDEX rate_events_at ON rate_events (at)")


@migration(5)
def _subscriber_sightings(conn: sqlite3.Connection) -> None:
    # Version 5, 8 before issue 11 (hardening issue, item 15).
    # When the state first saw each address in each subscriber file (email: the
    # case-folded key; source: the file name). When two files list one address, the
    # row that was there first keeps it (core.duplicates). Rows are never deleted:
    # an address that left a file and came back is as old there as it ever was.
    conn.execute(
        """CREATE TABLE subscriber_sightings (
            email TEXT NOT NULL,
            source TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            PRIMARY KEY (email, source)
        )"""
        " WITHOUT ROWID"  # key-only lookups by email: one B-tree (PostgreSQL's DDL omits it)
    )


@migration(6)
def _bounce_scores(conn: sqlite3.Connection) -> None:
    # Bounces processed after the SMTP conversation (state/bounce_api.py): a score per
    # address (the email key). score: permanent bounces of distinct editions within
    # the window; last_edition: the edition last counted (one bounce per edition);
    # temporary: temporary failures, counted only; marked_at: when the score marked the
    # address bounced (an address not bounced now despite it was unbounced: start again).
    conn.execute(
        """CREATE TABLE bounce_scores (
            email TEXT PRIMARY KEY,
            score INTEGER NOT NULL DEFAULT 0,
            temporary INTEGER NOT NULL DEFAULT 0,
            last_edition INTEGER,
            last_permanent_at TEXT,
            marked_at TEXT,
            last_reason TEXT,
            updated_at TEXT NOT NULL
        )"""
    )


@migration(7)
def _corrections(conn: sqlite3.Connection) -> None:
    # Issue 14, corrections (state/sql_corrections.py). assigned: the version mailed of
    # each key and its `updated` value then (NULL in rows from before: the delivery and
    # the edition's planning time stand in). deliveries.corrected_ids: the statements a
    # delivery carries as corrected. corrections: one row per address, key and `updated`
    # value mailed again; the primary key makes "once per updated value" a hard rule.
    conn.execute("ALTER TABLE assigned ADD COLUMN statement_id TEXT")
    conn.execute("ALTER TABLE assigned ADD COLUMN statement_updated_at TEXT")
    conn.execute("ALTER TABLE deliveries ADD COLUMN corrected_ids TEXT NOT NULL DEFAULT '[]'")
    conn.execute(
        """CREATE TABLE corrections (
            email_key TEXT NOT NULL,
            translation_key TEXT NOT NULL,
            statement_updated_at TEXT NOT NULL,
            statement_id TEXT NOT NULL,
            edition_id INTEGER NOT NULL REFERENCES editions (id),
            PRIMARY KEY (email_key, translation_key, statement_updated_at)
        )"""
        " WITHOUT ROWID"  # key-only lookups (PostgreSQL's DDL omits it)
    )


@migration(8)
def _assigned_keys(conn: sqlite3.Connection) -> None:
    # Issue 12: every translation key ever assigned to anyone, one row each (written
    # in the plan's transaction with the assigned rows, sql_editions). Planning reads it
    # once: a key never assigned anywhere (a new statement, the usual case) needs no
    # per-address look-up.
    # Filled here from the rows written before it existed.
    conn.execute("CREATE TABLE assigned_keys (translation_key TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute(
        "INSERT INTO assigned_keys (translation_key) SELECT DISTINCT translation_key FROM assigned"
    )
