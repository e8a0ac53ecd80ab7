"""What only the PostgreSQL store does: migrations under concurrent start, a newer schema
refused, leases shared by several senders (takeover of a dead one's rows, never a live
one's), SKIP LOCKED claims, shared signing keys, and ``check`` against a bad server."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from pg_helpers import Backend, migrated_to
from smtp_server import RecordingServer
from statement_feeds.cli import cli
from statement_feeds.config import SmtpConfig
from statement_feeds.digests.mailer import SmtpMessenger
from statement_feeds.digests.send import deliver
from statement_feeds.errors import StateError
from statement_feeds.state.api import Delivery, LedgerCounts, Outcome, PlannedDelivery
from statement_feeds.state.postgres import PostgresStore
from statement_feeds.state.postgres_migrations import MIGRATIONS
from statement_feeds.state.sqlite import SqliteStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
LEASE = timedelta(minutes=1)


def mid(edition: int, email: str) -> str:
    return f"<{edition}.{email}@example.org>"


def plan(store: PostgresStore, count: int) -> list[str]:
    emails = [f"user{n:03}@x.org" for n in range(count)]
    store.plan_edition(
        "daily", T0, T0, [PlannedDelivery(e, "", "en", ("s-en",), ("s",)) for e in emails], mid
    )
    return emails


def test_two_processes_migrating_one_fresh_database_do_not_race(pg_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            PostgresStore(pg_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        keys = conn.execute("SELECT COUNT(*) FROM settings").fetchone()
    assert versions == [v for v, _ in MIGRATIONS]
    assert keys == (1,)  # one subscriber id key: migration 1 ran once


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future')")
    with pytest.raises(StateError, match=r"schema version 99.*newer statement-feeds"):
        PostgresStore(pg_url)


def test_the_schema_has_the_shared_tables(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name IN ('daemons', 'secrets') ORDER BY table_name, ordinal_position"
        ).fetchall()
    assert [(t, c) for t, c, _, _ in columns] == [
        ("daemons", "name"),
        ("daemons", "host"),
        ("daemons", "pid"),
        ("daemons", "started_at"),
        ("daemons", "heartbeat_at"),
        ("daemons", "leader"),
        ("secrets", "name"),
        ("secrets", "value"),
        ("secrets", "created_at"),
    ]
    assert ("secrets", "value", "bytea", "NO") in columns


def hand_over(store: PostgresStore, now: datetime, limit: int = 10) -> list[Delivery]:
    claimed = list(store.claim(limit, now))
    assert all(store.record([], claimed, now))
    return claimed


def test_a_dead_senders_hand_overs_are_taken_over_after_the_lease(pg_url: str) -> None:
    with PostgresStore(pg_url, lease=LEASE) as dead, PostgresStore(pg_url, lease=LEASE) as live:
        plan(dead, 3)
        [lost] = hand_over(dead, T0, limit=1)  # in flight when its sender died
        # Within the lease the other sender leaves it alone (and gets the rest).
        assert {d.email for d in live.claim(10, T0 + LEASE / 2)} == {
            "user001@x.org",
            "user002@x.org",
        }
        assert live.counts() == LedgerCounts(pending=2, sending=1)
        # The daemons' timers wake for it when the lease ends.
        assert live.next_attempt_at() == T0 + LEASE
        [taken] = live.claim(10, T0 + LEASE)  # lapsed: taken over, sent again
        assert (taken.email, taken.message_id, taken.attempts) == (lost.email, lost.message_id, 2)
        assert live.record([], [taken], T0 + LEASE) == [True]
        live.mark_sent([taken], T0 + LEASE)
        # The dead sender's late reply (it was only cut off) cannot undo that.
        dead.mark_deferred(lost, T0 + LEASE, T0 + 2 * LEASE, 451, "late")
        assert live.counts() == LedgerCounts(pending=2, sent=1)


def test_a_live_sender_that_renews_keeps_its_hand_overs(pg_url: str) -> None:
    with PostgresStore(pg_url, lease=LEASE) as first, PostgresStore(pg_url, lease=LEASE) as other:
        plan(first, 2)
        [mine] = hand_over(first, T0, limit=1)
        [unsent] = first.claim(1, T0)
        assert first.renew_claims(T0 + LEASE * 0.9) == 2  # the in-flight one and the claimed one
        assert other.claim(10, T0 + LEASE * 1.5) == []  # renewed until 1.9 leases
        assert other.counts() == LedgerCounts(pending=1, sending=1)
        assert sorted(d.email for d in other.claim(10, T0 + LEASE * 2)) == [
            mine.email,
            unsent.email,
        ]


def test_a_shared_sender_does_not_recover_another_live_senders_messages(
    pg_url: str,
) -> None:
    with (
        RecordingServer() as server,
        PostgresStore(pg_url) as first,
        PostgresStore(pg_url) as second,
    ):
        emails = plan(first, 5)
        [in_flight] = hand_over(first, T0, limit=1)
        config = SmtpConfig(host=server.host, port=server.port, security="none", timeout=5.0)
        messenger = SmtpMessenger(config, local_hostname="client.test")

        async def go() -> Any:
            try:
                return await deliver(second, messenger, compose, lambda: T0, sender="b@example.org")
            finally:
                await messenger.close()

        summary = asyncio.run(go())
        assert (summary.recovered, summary.sent) == (0, 4)
        assert second.counts() == LedgerCounts(sending=1, sent=4)
        assert in_flight.email not in {r for m in server.messages for r in m.recipients}
        assert sorted(r for m in server.messages for r in m.recipients) == emails[1:]


def compose(delivery: Delivery) -> bytes:
    return (
        f"From: b@example.org\r\nTo: {delivery.email}\r\nMessage-ID: {delivery.message_id}\r\n"
        f"Subject: edition {delivery.edition_id}\r\n\r\nbody\r\n"
    ).encode()


def test_claims_skip_rows_another_sender_has_locked(pg_url: str) -> None:
    with PostgresStore(pg_url) as first, PostgresStore(pg_url) as second:
        plan(first, 6)
        # Without SKIP LOCKED the second claim would wait for the first transaction
        # (here: fail after lock_timeout, as both run in this one thread).
        second._db.execute("SET lock_timeout = '3s'")
        with first.transaction():
            mine = first.claim(3, T0)
            theirs = second.claim(10, T0)
        assert {d.email for d in mine}.isdisjoint(d.email for d in theirs)
        assert len(mine) + len(theirs) == 6


def test_senders_claiming_at_once_get_disjoint_rows(pg_url: str) -> None:
    with PostgresStore(pg_url) as planner:
        emails = plan(planner, 300)
    taken: list[list[str]] = [[], [], []]
    ready = threading.Barrier(3)

    def sender(number: int) -> None:
        with PostgresStore(pg_url) as store:
            ready.wait()  # all three start claiming together
            while batch := store.claim(7, T0):
                taken[number].extend(d.email for d in batch)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everyone = [e for part in taken for e in part]
    assert sorted(everyone) == emails  # each claimed exactly once
    assert sum(1 for part in taken if part) >= 2  # and the work was shared


def test_signing_keys_are_made_once_and_shared(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATEMENT_FEEDS_SECRET_KEY", raising=False)
    with PostgresStore(pg_url) as one, PostgresStore(pg_url) as other:
        keys = one.signing_keys()
        assert len(keys) == 1 and len(keys[0]) == 64
        assert other.signing_keys() == keys
    monkeypatch.setenv("STATEMENT_FEEDS_SECRET_KEY", "k" * 32)
    with PostgresStore(pg_url) as configured:
        assert configured.signing_keys() == [b"k" * 32]  # the environment still wins


def test_backend_sql_sees_the_store(make_backend: Backend) -> None:
    with make_backend.open() as store:
        store.sync_subscribers(["a@x.org"], T0)
    assert make_backend.sql("SELECT email FROM subscribers") == [("a@x.org",)]


def check(tmp_path: Path, make_site: Any, url: str) -> Any:
    config = make_site(tmp_path, extra_toml=f'\n[state]\nurl = "{url}"\n')
    return CliRunner().invoke(
        cli, ["--config", str(config), "check"], env={"STATEMENT_FEEDS_CONFIG": None}
    )


def test_check_migrates_a_reachable_database(tmp_path: Path, make_site: Any, pg_url: str) -> None:
    result = check(tmp_path, make_site, pg_url)
    assert result.exit_code == 0, result.output
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone() == (
            len(MIGRATIONS),
        )


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("postgresql://postgres@127.0.0.1:1/statements", "127.0.0.1:1/statements"),
        ("unknown-database", "does not exist"),
    ],
)
def test_check_exits_2_for_a_server_it_cannot_use(
    tmp_path: Path, make_site: Any, pg_url: str, where: str, said: str
) -> None:
    url = pg_url.rsplit("/", 1)[0] + "/sf_no_such_db" if where == "unknown-database" else where
    result = check(tmp_path, make_site, url)
    assert result.exit_code == 2, result.output
    assert "cannot connect to the state database" in result.output
    assert said in result.output


def test_check_exits_2_for_a_newer_schema(tmp_path: Path, make_site: Any, pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (7, 'future')")
    result = check(tmp_path, make_site, pg_url)
    assert result.exit_code == 2, result.output
    assert "schema version 7" in result.output


def test_a_sender_renews_its_leases_while_a_slow_server_holds_its_messages(
    pg_url: str,
) -> None:
    lease = timedelta(seconds=1.5)  # generous: a loaded machine stalls processes
    with (
        RecordingServer() as server,
        PostgresStore(pg_url, lease=lease) as sending,
        PostgresStore(pg_url, lease=lease) as other,
    ):
        sending.sync_subscribers(["a@x.org", "b@x.org"], T0)
        sending.plan_edition(
            "daily",
            T0,
            T0,
            [PlannedDelivery(e, "", "en", ("s-en",), ("s",)) for e in ("a@x.org", "b@x.org")],
            mid,
        )
        server.data_delay = 2.5  # each message in flight for longer than the lease
        done = threading.Event()
        stolen: list[str] = []

        def another_host() -> None:
            claimed = "SELECT COUNT(*) FROM deliveries WHERE claimed_by IS NOT NULL"
            while Backend("postgres", pg_url).sql(claimed) != [(2,)] and not done.is_set():
                done.wait(0.02)  # until the sender holds both: then try to take them
            while not done.is_set():
                stolen.extend(d.email for d in other.claim(10, datetime.now(UTC)))
                done.wait(0.1)

        watcher = threading.Thread(target=another_host)
        watcher.start()
        config = SmtpConfig(host=server.host, port=server.port, security="none", timeout=5.0)
        messenger = SmtpMessenger(config, local_hostname="client.test")

        async def go() -> Any:
            try:
                return await deliver(
                    sending, messenger, compose, lambda: datetime.now(UTC), sender="b@x.org",
                    concurrency=1,
                )  # fmt: skip
            finally:
                await messenger.close()

        try:
            summary = asyncio.run(go())
        finally:
            done.set()
            watcher.join()
        assert stolen == []  # renewed every lease / 3: never taken from a live sender
        assert summary.sent == 2
        assert sorted(r for m in server.messages for r in m.recipients) == ["a@x.org", "b@x.org"]


def test_an_unsubscribe_that_hits_a_deadlock_is_retried(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        emails = plan(store, 2)
        store.sync_subscribers(emails, T0)
        outcome: list[object] = []
        with psycopg.connect(pg_url) as other:  # another host, locking in the other order
            other.execute("SET deadlock_timeout = '20s'")  # the store's side detects it first
            other.execute(
                "UPDATE deliveries SET updated_at = updated_at WHERE email_key = %s", (emails[0],)
            )
            worker = threading.Thread(
                target=lambda: outcome.append(store.unsubscribe(emails[0], T0))
            )
            worker.start()
            time.sleep(0.3)  # the store now holds the subscriber row and waits for ours
            other.execute(
                "UPDATE subscribers SET bounce_reason = bounce_reason WHERE email = %s",
                (emails[0],),
            )
            other.commit()  # possible only because the store's transaction gave way
        worker.join()
        assert outcome == [True]  # the retry went through
        assert store.counts() == LedgerCounts(pending=1, cancelled=1)


def test_bounce_scores_has_sqlites_columns_with_byte_order_text(
    pg_url: str, tmp_path: Path
) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        found = conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default, collation_name"
            " FROM information_schema.columns WHERE table_name = 'bounce_scores'"
            " ORDER BY ordinal_position"
        ).fetchall()
    SqliteStore.open(tmp_path).close()
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        info = db.execute("PRAGMA table_info(bounce_scores)").fetchall()
    assert [(c, n == "YES") for c, _, n, _, _ in found] == [
        (r[1], not r[3] and not r[5]) for r in info
    ]
    kinds = {c: (t, d, collation) for c, t, _, d, collation in found}
    assert kinds["email"] == ("text", None, "C")
    assert kinds["score"] == kinds["temporary"] == ("integer", "0", None)
    assert kinds["last_edition"] == ("bigint", None, None)
    for stamp in ("last_permanent_at", "marked_at", "updated_at"):
        assert kinds[stamp] == ("text", None, "C"), stamp


# A sequence is not rolled back with the transaction that failed: "once" holds.
FAIL_ONCE = """
CREATE TABLE fail_once (email text PRIMARY KEY, code text NOT NULL);
CREATE SEQUENCE fail_count;
CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE wanted text;
BEGIN
    SELECT code INTO wanted FROM fail_once WHERE email = NEW.email_key;
    IF wanted IS NOT NULL AND nextval('fail_count') = 1 THEN
        RAISE EXCEPTION 'injected failure' USING ERRCODE = wanted;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_once BEFORE UPDATE ON deliveries FOR EACH ROW EXECUTE FUNCTION fail_once();
"""


@pytest.mark.parametrize(("code", "retried"), [("40P01", True), ("40001", True), ("P0001", False)])
def test_a_record_that_fails_in_the_database_leaves_the_store_usable(
    pg_url: str, code: str, retried: bool
) -> None:
    # record() sends the usual turn as one statement; a row failing in it
    # (the server's trigger, here) must roll it back whole: retried when it was a
    # deadlock or serialization failure, else a StateError, and the connection clean.
    with PostgresStore(pg_url, lease=LEASE) as store:
        emails = plan(store, 2)
        [first, second] = store.claim(2, T0)
        assert store.record([], [first], T0) == [True]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(FAIL_ONCE)
            admin.execute("INSERT INTO fail_once VALUES (%s, %s)", (second.email, code))
        outcome = [Outcome(first, "sent")]
        if retried:
            assert store.record(outcome, [second], T0) == [True]
        else:
            with pytest.raises(StateError, match="injected failure"):
                store.record(outcome, [second], T0)
            # Nothing of the failed transaction stayed: the outcome is not recorded.
            assert store.counts() == LedgerCounts(pending=1, sending=1)
            assert store.record(outcome, [second], T0) == [True]  # the same store goes on
        assert store.counts() == LedgerCounts(sent=1, sending=1)
        assert sorted(emails) == sorted(d.email for d in (first, second))


def test_corrections_migration_upgrades_a_version_2_database(pg_url: str) -> None:
    # Issue 14 (migration 3): older rows stay usable, with no recorded version (NULL).
    from statement_feeds.state.postgres_migrations import migrate

    stamp = "2024-06-01T07:00:00.000000Z"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrated_to(conn, 2)
        conn.execute(
            "INSERT INTO editions (frequency, due_at, planned_at) VALUES ('daily', %s, %s)",
            (stamp, stamp),
        )
        conn.execute(
            "INSERT INTO deliveries (edition_id, email_key, email, name, lang, statement_ids,"
            " message_id, state, next_attempt_at, updated_at)"
            " VALUES (1, 'a@x.org', 'a@x.org', '', 'en', '[\"k-en\"]', '<m>', 'sent', %s, %s)",
            (stamp, stamp),
        )
        conn.execute("INSERT INTO assigned VALUES ('a@x.org', 'k', 1)")
        assert migrate(conn, pg_url) == [v for v, _ in MIGRATIONS[2:]]  # 3 and later
        rows = conn.execute("SELECT statement_id, statement_updated_at FROM assigned").fetchall()
        assert rows == [(None, None)]
        fixed = conn.execute("SELECT corrected_ids FROM deliveries").fetchall()
        assert fixed == [("[]",)]
