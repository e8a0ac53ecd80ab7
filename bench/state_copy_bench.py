"""`state copy` benchmark: rows/s and seconds to move a big SQLite state into PostgreSQL.

    .venv/bin/python bench/state_copy_bench.py                     # 100,000 subscribers
    .venv/bin/python bench/state_copy_bench.py --subscribers 20000 --editions 2

A real SQLite state in a temporary folder, made with the store's own API for the
addresses (``sync_subscribers``: join times and subscriber ids) and SQL for the sightings
and the ledger (``--editions`` editions of one delivery and one sent translation key per
subscriber: 100,000 × 4 = 400,000 deliveries), then ``copy_state`` into a fresh database
on the PostgreSQL at ``$STATEMENT_FEEDS_TEST_PG`` (default: the local server), dropped
afterwards. Prints rows per table, seconds, rows/s and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from statement_feeds.state.postgres_copy import copy_state
from statement_feeds.state.sqlite import SqliteStore
from statement_feeds.state.timestamps import to_ts

T0 = datetime(2024, 6, 1, tzinfo=UTC)
STATES = ["sent"] * 17 + ["deferred", "failed", "pending"]
BASE = os.environ.get("STATEMENT_FEEDS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_state(folder: Path, subscribers: int, editions: int) -> float:
    """A state with ``subscribers`` addresses and ``editions`` full editions; seconds taken."""
    started = time.monotonic()
    emails = [f"user{i}@example{i % 97}.org" for i in range(subscribers)]
    with SqliteStore.open(folder) as store:
        store.sync_subscribers(emails, T0)
    db = sqlite3.connect(folder / "state.sqlite", isolation_level=None)
    try:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO subscriber_sightings (email, source, first_seen)"
            " VALUES (?, 'list.csv', ?)",
            ((email, to_ts(T0)) for email in emails),
        )
        for number in range(1, editions + 1):
            due = to_ts(T0 + timedelta(days=number))
            db.execute(
                "INSERT INTO editions (id, frequency, due_at, planned_at, deliveries)"
                " VALUES (?, 'daily', ?, ?, ?)",
                (number, due, due, subscribers),
            )
            db.executemany(
                "INSERT INTO deliveries (edition_id, email_key, email, name, lang,"
                " statement_ids, message_id, state, attempts, first_attempt_at,"
                " next_attempt_at, last_code, last_error, updated_at)"
                " VALUES (?, ?, ?, ?, 'en', ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (_delivery(number, i, email, due) for i, email in enumerate(emails)),
            )
            db.executemany(
                "INSERT INTO assigned (email_key, translation_key, edition_id) VALUES (?, ?, ?)",
                ((email, f"statement-{number}", number) for email in emails),
            )
        db.execute("COMMIT")
    finally:
        db.close()
    return time.monotonic() - started


def _delivery(edition: int, i: int, email: str, due: str) -> tuple[object, ...]:
    state = STATES[i % len(STATES)]
    code, error = {"deferred": (451, "451 4.3.0 try later"), "failed": (550, "550 5.1.1 no")}.get(
        state, (None, None)
    )
    return (
        edition, email, email, f"User {i}", f'["s{edition}"]',
        f"<{secrets.token_hex(16)}@example.org>", state, due, due, code, error, due,
    )  # fmt: skip


def fresh_database() -> tuple[str, str]:
    name = f"sf_copy_bench_{secrets.token_hex(4)}"
    with psycopg.connect(BASE, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    return name, urlunsplit(urlsplit(BASE)._replace(path=f"/{name}"))


def drop(name: str) -> None:
    with psycopg.connect(BASE, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--editions", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        made = make_state(folder, args.subscribers, args.editions)
        size = (folder / "state.sqlite").stat().st_size
        print(f"made the state in {made:.1f} s: {size / 1e6:.0f} MB of SQLite")
        name, url = fresh_database()
        try:
            started = time.monotonic()
            report = copy_state(folder, url)
            wall = time.monotonic() - started
        finally:
            drop(name)
    for table, rows in report.rows.items():
        took = report.table_seconds[table]
        rate = f"{rows / took:>9,.0f} rows/s" if rows and took else ""
        print(f"  {table:<22} {rows:>9} rows {took:6.2f} s {rate}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"copied {report.total:,} rows in {report.seconds:.1f} s (transaction) / {wall:.1f} s "
        f"(with connecting and locks): {report.total / report.seconds:,.0f} rows/s; "
        f"peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
