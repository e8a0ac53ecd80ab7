"""`state copy --to postgresql://…` end to end: a state made by the real CLI (a `digest send`
to a real aiosmtpd server that accepts some, defers some and refuses some), web sign-ups
through the store's API, then the copy into a fresh database on the real PostgreSQL.

The site's time line: everyone joins at T0 (a first `digest send`), statements follow,
the edition under test is sent at T1.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from copy_helpers import columns, fresh_database, postgres_count, postgres_rows, sqlite_rows

from smtp_server import RecordingServer
from statement_feeds.cli import cli
from statement_feeds.domain.web_subscribers import Preferences
from statement_feeds.state import postgres_copy
from statement_feeds.state.copy_tables import REPLACED, TABLES
from statement_feeds.state.open import open_store
from statement_feeds.state.postgres import PostgresStore
from statement_feeds.state.postgres_copy import MIGRATE
from statement_feeds.state.timestamps import to_ts

T0 = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
PUBLIC_URL = "https://example.org/newsletter/"
SUBSCRIBERS = """\
email,name,languages,frequency
ok1@example.com,One,en,daily
ok2@example.com,Two,ru en,daily
later@example.com,Later,en,daily
gone@example.com,Gone,en,daily
policy@example.com,Policy,en,daily
leaver@example.com,Leaver,en,daily
weekly@example.com,Weekly,en,weekly
"""
REPLIES = {
    "later@example.com": "451 4.3.0 try later",  # deferred
    "gone@example.com": "550 5.1.1 no such user",  # failed, address bounced
    "policy@example.com": "554 5.7.1 relaying denied",  # failed, address kept
}
SENT = {"ok1@example.com", "ok2@example.com", "weekly@example.com", "Web.User@Example.com"}


class Site:
    def __init__(self, config: Path, server: RecordingServer) -> None:
        self.config = config
        self.root = config.parent
        self.server = server
        self.database = self.root / "state" / "state.sqlite"

    def cli(self, *args: str, at: datetime = T1) -> Result:
        env = {"STATEMENT_FEEDS_CONFIG": None, "STATEMENT_FEEDS_FAKE_NOW": at.isoformat()}
        return CliRunner().invoke(
            cli, ["--config", str(self.config), *args], env=env, catch_exceptions=False
        )

    def publish(self, name: str, title: str, date: datetime) -> None:
        text = f"---\ntitle: {title}\ndate: {date:%Y-%m-%dT%H:%M:%SZ}\n---\n\nBody of {title}.\n"
        (self.root / "statements" / name).write_text(text, encoding="utf-8")

    def copy(self, url: str) -> Result:
        return self.cli("state", "copy", "--to", url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_database()


@pytest.fixture
def site(tmp_path: Path, make_site: Callable[..., Path]) -> Iterator[Site]:
    with RecordingServer() as server:
        config = make_site(tmp_path / "site", extra_toml=f'\n[http]\npublic_url = "{PUBLIC_URL}"\n')
        smtp = (
            f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
            "concurrency = 2\ntimeout = 5\n"
        )
        config.write_text(config.read_text().replace('[smtp]\nhost = ""\n', smtp))
        made = Site(config, server)
        (made.root / "subscribers" / "list.csv").write_text(SUBSCRIBERS, encoding="utf-8")
        assert made.cli("digest", "send", at=T0).exit_code == 0  # everyone joins at T0
        _web_side(made.root / "state")
        made.publish("a.en.md", "Alpha", T0 + timedelta(hours=1))
        made.publish("a.ru.md", "Альфа", T0 + timedelta(hours=1))
        server.rcpt_replies.update(REPLIES)
        sent = made.cli("digest", "send")
        assert sent.exit_code == 0, sent.output
        assert "sent 4, deferred 1, failed 2" in sent.output
        yield made


def _web_side(state: Path) -> None:
    """What the web pages record, through the store's own API."""
    with open_store(state) as store:
        prefs = Preferences(("en",), "daily")
        store.add_confirmation("token-web", "Web.User@Example.com", prefs, T0, T0 + timedelta(2))
        assert store.confirm_subscription("token-web", T0 + timedelta(minutes=1)) is not None
        store.add_confirmation("token-unused", "maybe@example.com", prefs, T0, T0 + timedelta(2))
        store.set_preferences("ok2@example.com", Preferences(("ru", "en"), "daily"), T0)
        for minute in range(3):
            store.hit_rate_limit("bucket", T0 + timedelta(minutes=minute), timedelta(hours=1), 9)
        assert store.unsubscribe("leaver@example.com", T0 + timedelta(minutes=5))
    _bounces(state)


BOUNCE_WINDOW = timedelta(days=30)


def _bounce(store: Any, email: str, edition: int, at: datetime, permanent: bool = True) -> Any:
    return store.record_bounce(
        email, edition, permanent=permanent, reason="5.1.1 no such user", now=at,
        threshold=3, reset_after=BOUNCE_WINDOW,
    )  # fmt: skip


def _bounces(state: Path) -> None:
    """Bounce scores, as `bounces process` records them: two permanent, one temporary."""
    with open_store(state) as store:
        _bounce(store, "ok1@example.com", 1, T0 + timedelta(minutes=10))
        _bounce(store, "ok1@example.com", 2, T0 + timedelta(minutes=20))
        assert _bounce(store, "ok2@example.com", 1, T0, permanent=False).temporary == 1


def _stamps(name: str) -> set[str]:
    return {t.timestamps for t in (*TABLES, *REPLACED) if t.name == name}.pop()


def test_every_table_arrives_with_the_same_content(site: Site, pg_url: str) -> None:
    done = site.copy(pg_url)

    assert done.exit_code == 0, done.output
    for table in (*TABLES, *REPLACED):
        names = columns(site.database, table.name)
        expected = sqlite_rows(site.database, table.name, _stamps(table.name))
        found = postgres_rows(pg_url, table.name, names, stamps=_stamps(table.name))
        assert found == expected, table.name
        assert f"copied   {table.name:<22} {len(expected):>9} rows" in done.output
    states = {r[0]: r[1] for r in postgres_rows(pg_url, "deliveries", ["email", "state"])}
    assert states == {
        **dict.fromkeys(SENT, "sent"),
        "later@example.com": "deferred",
        "gone@example.com": "failed",
        "policy@example.com": "failed",
    }
    blocked = postgres_rows(pg_url, "subscribers", ["email", "unsubscribed_at", "bounced_at"])
    assert {e for e, u, _ in blocked if u} == {"leaver@example.com"}
    assert {e for e, _, b in blocked if b} == {"gone@example.com"}
    assert postgres_count(pg_url, "pending_confirmations") == 2
    assert postgres_count(pg_url, "rate_events") == 3
    assert postgres_count(pg_url, "assigned") >= len(SENT)  # sent translation keys
    # Every key given to anyone, so that planning on the copy looks up the same keys.
    given = {key for (key,) in postgres_rows(pg_url, "assigned", ["translation_key"])}
    assert (
        given
        and {k for (k,) in postgres_rows(pg_url, "assigned_keys", ["translation_key"])} == given
    )


def test_bounce_scores_survive_the_copy_and_count_on(site: Site, pg_url: str) -> None:
    assert site.copy(pg_url).exit_code == 0

    rows = postgres_rows(pg_url, "bounce_scores", ["email", "score", "temporary", "last_edition"])
    assert sorted(rows) == [("ok1@example.com", 2, 0, 2), ("ok2@example.com", 0, 1, None)]
    with PostgresStore(pg_url) as store:  # the third edition's bounce reaches the threshold
        third = _bounce(store, "ok1@example.com", 3, T1)
        assert (third.score, third.temporary, third.marked) == (3, 0, True)
        assert store.is_blocked("ok1@example.com")
        assert _bounce(store, "ok2@example.com", 3, T1, permanent=False).temporary == 2


def test_the_sequences_continue_after_the_copied_ids(site: Site, pg_url: str) -> None:
    assert site.copy(pg_url).exit_code == 0
    with psycopg.connect(pg_url) as conn:
        highest = conn.execute("SELECT max(id) FROM editions").fetchone()
        made = conn.execute(
            "INSERT INTO editions (frequency, due_at, planned_at) VALUES"
            " ('weekly', now(), now()) RETURNING id"
        ).fetchone()
        conn.rollback()
    assert highest is not None and made is not None and made[0] == highest[0] + 1


def _joined_at_as(url: str, kind: str) -> None:
    """Make the target's schema, then give subscribers.joined_at this type (empty table)."""
    with psycopg.connect(url, autocommit=True) as conn:
        MIGRATE(conn, url)
        conn.execute(
            f"ALTER TABLE subscribers ALTER COLUMN joined_at TYPE {kind}"
            f" USING joined_at::{kind}".encode()
        )


def _joined(url: str) -> tuple[str, object]:
    with psycopg.connect(url) as conn:
        kind = conn.execute(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'subscribers' AND column_name = 'joined_at'"
        ).fetchone()
        joined = conn.execute("SELECT min(joined_at) FROM subscribers").fetchone()
    assert kind is not None and joined is not None
    return kind[0], joined[0]


def test_timestamps_go_into_timestamptz_columns_as_the_same_instant(
    site: Site, pg_url: str
) -> None:
    _joined_at_as(pg_url, "timestamptz")

    assert site.copy(pg_url).exit_code == 0

    assert _joined(pg_url) == ("timestamp with time zone", T0)


def test_timestamps_go_into_text_columns_as_the_canonical_fixed_width_text(
    site: Site, pg_url: str
) -> None:
    # What the PostgreSQL store may keep (SQLite's text, compared as text).
    _joined_at_as(pg_url, "text")
    with sqlite3.connect(site.database) as db:
        db.execute(  # an offset the store never writes itself: normalised on the way
            "UPDATE subscribers SET joined_at = '2024-05-01T09:00:00+02:00'"
            " WHERE email = 'ok1@example.com'"
        )

    assert site.copy(pg_url).exit_code == 0

    assert _joined(pg_url) == ("text", to_ts(T0))
    [(text,)] = postgres_rows(pg_url, "subscribers", ["joined_at"], where="ok1@example.com")
    assert text == "2024-05-01T07:00:00.000000Z"


def test_a_timestamp_column_of_another_type_is_refused(site: Site, pg_url: str) -> None:
    _joined_at_as(pg_url, "date")

    refused = site.copy(pg_url)

    assert refused.exit_code == 2
    assert "column subscribers.joined_at is date" in refused.stderr
    assert _all_empty(pg_url)


def test_a_non_empty_target_is_refused_and_left_alone(site: Site, pg_url: str) -> None:
    assert site.copy(pg_url).exit_code == 0
    before = postgres_count(pg_url, "deliveries")

    again = site.copy(pg_url)

    assert again.exit_code == 2
    assert "is not empty (rows in subscribers, editions, deliveries" in again.stderr
    assert "createdb" in again.stderr
    assert postgres_count(pg_url, "deliveries") == before


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:hunter2@127.0.0.1:5432/statements",
        "postgresql://postgres@127.0.0.1:5432/statements?password=hunter2",
    ],
)
def test_a_password_in_the_url_is_refused_and_never_echoed(site: Site, url: str) -> None:
    refused = site.copy(url)

    assert refused.exit_code == 2
    assert "holds a password" in refused.stderr
    assert "STATEMENT_FEEDS_STATE_PASSWORD" in refused.stderr
    assert "hunter2" not in refused.output


def test_not_a_postgresql_url_is_refused(site: Site) -> None:
    refused = site.copy("mysql://root@127.0.0.1/statements")
    assert refused.exit_code == 2 and "must be a PostgreSQL URL" in refused.stderr


def test_an_unreachable_server_is_a_clear_error(site: Site) -> None:
    refused = site.copy("postgresql://postgres@127.0.0.1:1/statements")

    assert refused.exit_code == 2
    assert "cannot connect to the state database 127.0.0.1:1/statements" in refused.stderr
    assert "Traceback" not in refused.output


def test_a_running_daemon_is_refused(site: Site, pg_url: str) -> None:
    log = (site.root / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "statement_feeds", "--config", str(site.config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while "daemon ready" not in (site.root / "daemon.log").read_text():
            assert daemon.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)

        refused = site.copy(pg_url)
    finally:
        daemon.terminate()
        daemon.wait(15)
        log.close()
    assert refused.exit_code == 2
    assert f"process {daemon.pid} is using the state" in refused.stderr
    assert "stop it first" in refused.stderr
    with psycopg.connect(pg_url) as conn:  # refused before the target was even touched
        made = conn.execute("SELECT to_regclass('subscribers')").fetchone()
    assert made == (None,)


def test_a_digest_send_delivering_is_refused(site: Site, pg_url: str) -> None:
    # What `digest send` holds while it delivers without a daemon: the sender lock.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; "
         "from statement_feeds.state.lock import SENDER_LOCK, StateLock; "
         "StateLock(Path(sys.argv[1]), SENDER_LOCK).acquire(); print('held', flush=True); "
         "time.sleep(60)", str(site.root / "state")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refused = site.copy(pg_url)
    finally:
        holder.kill()
        holder.wait(10)
    assert refused.exit_code == 2
    assert f"process {holder.pid} is using the state" in refused.stderr
    assert site.copy(pg_url).exit_code == 0  # once it is gone: the locks were released


def _break(site: Site, sql: str, *params: object) -> None:
    db = sqlite3.connect(site.database)
    try:
        db.execute("PRAGMA foreign_keys = OFF")  # as a damaged or hand-edited state may be
        db.execute(sql, params)
        db.commit()
    finally:
        db.close()


def _all_empty(url: str) -> bool:
    return all(postgres_count(url, table.name) == 0 for table in TABLES)


def test_a_bad_value_mid_copy_leaves_the_target_empty(site: Site, pg_url: str) -> None:
    # subscriber_sightings is copied last: everything before it was already sent over.
    _break(site, "UPDATE subscriber_sightings SET first_seen = 'yesterday' WHERE email = ?",
           "ok1@example.com")  # fmt: skip

    failed = site.copy(pg_url)

    assert failed.exit_code == 2
    assert "cannot copy table subscriber_sightings" in failed.stderr
    assert "column first_seen holds 'yesterday', which is not a valid timestamp" in failed.stderr
    assert _all_empty(pg_url)
    assert site.copy(pg_url).exit_code == 2  # still broken: still nothing half-done
    assert _all_empty(pg_url)


def test_a_constraint_the_target_enforces_mid_copy_leaves_it_empty(site: Site, pg_url: str) -> None:
    _break(site, "UPDATE deliveries SET edition_id = 99 WHERE email = ?", "ok1@example.com")

    failed = site.copy(pg_url)

    assert failed.exit_code == 2
    assert "cannot copy the state in the state database" in failed.stderr
    assert "SQLSTATE 23503" in failed.stderr  # foreign key violation
    assert _all_empty(pg_url)


def test_rows_the_target_drops_silently_fail_the_count_check(site: Site, pg_url: str) -> None:
    # A trigger that swallows one row (as a stray rule or trigger on a reused database
    # could): COPY succeeds, the count before the commit does not.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        MIGRATE(conn, pg_url)
        conn.execute(
            "CREATE FUNCTION swallow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.email = 'ok1@example.com' THEN RETURN NULL; END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER swallow BEFORE INSERT ON subscriber_sightings"
            " FOR EACH ROW EXECUTE FUNCTION swallow()"
        )
    rows = len(sqlite_rows(site.database, "subscriber_sightings", set()))

    failed = site.copy(pg_url)

    assert failed.exit_code == 2
    assert (
        f"table subscriber_sightings: the source has {rows} rows, {rows} were sent and the "
        f"target has {rows - 1}; nothing was copied"
    ) in failed.stderr
    assert _all_empty(pg_url)


def test_the_settings_made_by_the_target_migration_are_replaced(site: Site, pg_url: str) -> None:
    # The subscriber-id key must be the source's: ids in mail already sent keep resolving.
    with sqlite3.connect(site.database) as db:
        key = db.execute("SELECT value FROM settings WHERE name = 'subscriber_id_key'").fetchone()

    assert site.copy(pg_url).exit_code == 0

    assert postgres_rows(pg_url, "settings", ["name", "value"]) == [("subscriber_id_key", key[0])]


def test_after_the_copy_a_digest_send_on_postgresql_mails_nobody_again(
    site: Site, pg_url: str
) -> None:
    pytest.importorskip("statement_feeds.state.postgres")  # the PostgreSQL store (pg-store)
    assert site.copy(pg_url).exit_code == 0
    site.config.write_text(site.config.read_text() + f'\n[state]\nurl = "{pg_url}"\n')
    site.server.rcpt_replies.clear()
    before = len(site.server.messages)

    again = site.cli("digest", "send", at=T1 + timedelta(hours=2))

    assert again.exit_code == 0, again.output
    new = [r for m in site.server.messages[before:] for r in m.recipients]
    # Only the deferred delivery may go out now (its retry); nobody gets anything twice.
    assert set(new) <= {"later@example.com"}
    assert len(new) == len(set(new))


def _big_state(state: Path, subscribers: int) -> None:
    """A state big enough that its copy takes a moment: subscribers and two editions."""
    emails = [f"user{i}@example.org" for i in range(subscribers)]
    with open_store(state) as store:
        store.sync_subscribers(emails, T0)
    db = sqlite3.connect(state / "state.sqlite", isolation_level=None)
    try:
        db.execute("BEGIN")
        for edition in (1, 2):
            due = f"2024-05-0{edition}T07:00:00.000000Z"
            db.execute(
                "INSERT INTO editions (id, frequency, due_at, planned_at, deliveries)"
                " VALUES (?, 'daily', ?, ?, ?)",
                (edition, due, due, subscribers),
            )
            db.executemany(
                "INSERT INTO deliveries (edition_id, email_key, email, name, lang,"
                " statement_ids, message_id, state, next_attempt_at, updated_at)"
                " VALUES (?, ?, ?, 'N', 'en', '[]', ?, 'sent', ?, ?)",
                ((edition, e, e, f"<{edition}.{e}>", due, due) for e in emails),
            )
        db.execute("COMMIT")
    finally:
        db.close()


def _copying(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'COPY \"deliveries\"%' AND state = 'active'"
        ).fetchone()
    return row is not None and row[0] > 0


@pytest.mark.slow
def test_a_copy_killed_mid_way_leaves_the_target_empty_and_can_be_run_again(
    tmp_path: Path, make_site: Callable[..., Path], pg_url: str
) -> None:
    config = make_site(tmp_path / "site")
    _big_state(config.parent / "state", 60_000)
    command = [sys.executable, "-m", "statement_feeds", "--config", str(config), "state", "copy"]
    copy = subprocess.Popen([*command, "--to", pg_url], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _copying(pg_url):  # the deliveries are on their way
            assert copy.poll() is None, copy.stderr.read() if copy.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        copy.kill()  # SIGKILL: no rollback from the client, the server must do it
        copy.wait(10)
    assert copy.returncode == -9
    until = time.monotonic() + 30
    while _copying(pg_url):
        assert time.monotonic() < until
        time.sleep(0.05)

    assert _all_empty(pg_url)
    again = subprocess.run(
        [*command, "--to", pg_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert postgres_count(pg_url, "deliveries") == 120_000
    assert postgres_count(pg_url, "subscribers") == 60_000


def _analysed(url: str) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)",
            [["deliveries", "subscribers", "assigned"]],
        ).fetchall()
    return {name: float(tuples) for name, tuples in rows}


def test_the_copied_tables_are_analysed_once_committed(site: Site, pg_url: str) -> None:
    # The planner's statistics at once, not after autovacuum's next nap: without them a
    # big copied ledger may be read whole where an index would do (-1: never analysed).
    done = site.copy(pg_url)

    assert done.exit_code == 0, done.output
    assert "gathered the tables' statistics in" in done.output
    tuples = _analysed(pg_url)
    assert tuples["deliveries"] == postgres_count(pg_url, "deliveries")
    assert tuples["subscribers"] == postgres_count(pg_url, "subscribers")


def test_statistics_that_cannot_be_gathered_leave_the_copy_standing(
    site: Site, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A table another session holds (a VACUUM's lock) past the wait: reported, not raised.
    assert site.copy(pg_url).exit_code == 0
    monkeypatch.setattr(postgres_copy, "ANALYSE_WAIT", 0.2)
    report = postgres_copy.CopyReport("target", rows={"deliveries": 5, "subscribers": 0})
    with psycopg.connect(pg_url) as other, psycopg.connect(pg_url, autocommit=True) as conn:
        other.execute("LOCK TABLE deliveries IN SHARE UPDATE EXCLUSIVE MODE")
        postgres_copy._analyse(conn, report)
    assert report.analyse_error is not None
    assert "lock timeout" in report.analyse_error
    assert postgres_count(pg_url, "deliveries") > 0  # nothing undone
