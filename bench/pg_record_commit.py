"""What ``SET LOCAL synchronous_commit = off`` saves when the sender records outcomes.

    .venv/bin/python bench/pg_record_commit.py                  # 2,000 messages, 3 rounds
    .venv/bin/python bench/pg_record_commit.py --messages 500 --url postgresql://...

On a fresh database (created and dropped here; ``--url`` names the server, default
``$STATEMENT_FEEDS_TEST_PG`` or the local one), an edition is planned, then sent the
way ``digests.send`` records it when one message is in flight: per message one
``record`` transaction holding the previous reply and the next hand-over. Timed with
``synchronous_commit`` on (every commit waits for its WAL flush) and off (what
``PostgresStore.record`` uses), interleaved, and printed as ms per recorded message.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg

from statement_feeds.state.api import Outcome, PlannedDelivery
from statement_feeds.state.postgres import PostgresStore, close_pools

T0 = datetime(2024, 6, 1, tzinfo=UTC)
DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def one_round(url: str, messages: int, commit: str, round_number: int) -> float:
    """ms per recorded message for one edition of ``messages``, with ``commit``."""
    with PostgresStore(url) as store:
        store.confirm_commit = commit
        due = T0 + timedelta(days=2 * round_number + (commit == "on"))  # an edition each
        emails = [f"u{n}.{commit}.{round_number}@example.org" for n in range(messages)]
        store.plan_edition(
            "daily",
            due,
            due,
            [PlannedDelivery(e, "", "en", ("s",), (f"k{commit}{round_number}",)) for e in emails],
            lambda edition, email: f"<{edition}.{email}>",
        )
        claimed = list(store.claim(messages, due))
        started = time.perf_counter()
        previous = None
        for delivery in claimed:
            done = [Outcome(previous, "sent")] if previous else []
            store.record(done, [delivery], due)
            previous = delivery
        if previous is not None:
            store.record([Outcome(previous, "sent")], [], due)
        elapsed = time.perf_counter() - started
        assert store.counts().sent >= len(claimed)
    return elapsed * 1000 / max(1, len(claimed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("STATEMENT_FEEDS_TEST_PG") or DEFAULT)
    args = parser.parse_args()
    name = "sf_bench_" + secrets.token_hex(4)
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        delay = conn.execute("SHOW wal_writer_delay").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    url = args.url.rsplit("/", 1)[0] + "/" + name
    try:
        figures: dict[str, list[float]] = {"on": [], "off": []}
        for number in range(args.rounds):
            for commit in ("on", "off"):
                figures[commit].append(one_round(url, args.messages, commit, number))
        print(f"{args.messages} messages x {args.rounds} rounds, one record() per message")
        settings = f"wal_writer_delay = {delay and delay[0]}, fsync = {fsync and fsync[0]}"
        print(f"server: {settings}")
        for commit in ("on", "off"):
            values = figures[commit]
            print(
                f"synchronous_commit = {commit:3}: {statistics.median(values):.3f} ms per message"
                f" (median; rounds {', '.join(f'{v:.3f}' for v in values)})"
            )
        ratio = statistics.median(figures["on"]) / statistics.median(figures["off"])
        print(f"off is {ratio:.2f}x as fast as on")
    finally:
        close_pools()
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
