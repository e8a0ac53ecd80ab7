"""A hypothesis state machine over planning + the ledger, crashes included, on both
backends (SQLite; PostgreSQL: one database for the run, emptied for each example).

Invariants checked at every step and after draining at the end:

- never two confirmed sends of one statement (any translation) to one subscriber;
- never two confirmed sends of one correction (a statement's ``updated`` value) to one
  subscriber, and corrections only to who was mailed that statement;
- after draining, everyone mailed a statement has been planned its latest correction
  (``updated`` moved; a typo fix without moving it is no correction);
- never a delivery claimed, or handed over to SMTP, for an address after it
  unsubscribed or bounced (a claim made before still stops at the hand-over);
- when the server is healthy, everything due is eventually sent (nothing lost
  to crashes, deferrals or restarts).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from pg_helpers import Backend, create_database, drop_database, unavailable, url_of
from statement_feeds.config import load_config
from statement_feeds.digests.plan import plan_edition, sync_subscribers
from statement_feeds.domain.catalog import build_catalog
from statement_feeds.domain.statements import Statement
from statement_feeds.state.api import Delivery

EMAILS = ["ann@x.org", "bob@x.org", "Cid@x.org", "dora@y.org"]
LANGUAGE_LISTS = [("en",), ("ru",), ("ru", "en"), ("de", "ru")]
KEYS = ["k1", "k2", "k3", "k4", "k5"]
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
TOML = '[site]\ntitle = "S"\nurl = "https://example.org/"\ntimezone = "UTC"\n'


def mid(edition: int, email: str) -> str:
    return f"<{edition}.{email.lower()}@example.org>"


def statement(key: str, lang: str, published: datetime) -> Statement:
    return Statement(
        f"{key}.{lang}.md",
        f"{key}-{lang}",
        lang,
        key,
        key,
        published,
        published,
        "https://example.org/",
        "",
        "",
        "",
        False,
        key + lang,
    )


_PG_DATABASE: list[str] = []  # made on first use, dropped at exit
_TABLES = (
    "subscribers, editions, deliveries, assigned, web_subscribers, preference_overrides,"
    " pending_confirmations, rate_events, subscriber_ids, subscriber_sightings, corrections"
)


def fresh_pg_state() -> Backend:
    """The run's PostgreSQL database, emptied (migrated on the first use)."""
    if not _PG_DATABASE:
        _PG_DATABASE.append(create_database())
        atexit.register(drop_database, _PG_DATABASE[0])
    backend = Backend("postgres", url_of(_PG_DATABASE[0]))
    backend.open().close()  # migrated
    backend.sql(f"TRUNCATE {_TABLES} RESTART IDENTITY")
    return backend


class LedgerMachine(RuleBasedStateMachine):
    BACKEND = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="ledger-sm-"))
        (self.root / "statement-feeds.toml").write_text(TOML, encoding="utf-8")
        (self.root / "subscribers").mkdir()
        self.config = load_config(self.root / "statement-feeds.toml")
        if self.BACKEND == "sqlite":
            self.backend = Backend("sqlite", self.config.paths.state)
        else:
            self.backend = fresh_pg_state()
        self.store = self.backend.open()
        self.clock = datetime(2024, 1, 1, tzinfo=UTC)
        self.listed: dict[str, tuple[str, ...]] = {}
        self.blocked: set[str] = set()
        self.statements: dict[tuple[str, str], Statement] = {}
        self.claimed: list[Delivery] = []  # reserved, not handed over yet
        self.in_flight: list[Delivery] = []  # handed over to SMTP, no reply yet
        self.confirmed: set[tuple[str, str]] = set()
        self.corrections_confirmed: set[tuple[str, str, str]] = set()  # email, key, updated

    def tick(self, minutes: int = 30) -> None:
        self.clock += timedelta(minutes=minutes)

    def write_csv(self) -> None:
        rows = "".join(f"{e},{' '.join(langs)}\n" for e, langs in self.listed.items())
        (self.root / "subscribers" / "list.csv").write_text("email,languages\n" + rows, "utf-8")

    @initialize(
        subscribers=st.dictionaries(
            st.sampled_from(EMAILS), st.sampled_from(LANGUAGE_LISTS), min_size=1
        )
    )
    def start(self, subscribers: dict[str, tuple[str, ...]]) -> None:
        for email, languages in subscribers.items():
            self.subscribe(email, languages)
        self.publish("k0", {"en", "ru", "de"})

    @rule(email=st.sampled_from(EMAILS), languages=st.sampled_from(LANGUAGE_LISTS))
    def subscribe(self, email: str, languages: tuple[str, ...]) -> None:
        self.listed.setdefault(email, languages)
        self.write_csv()
        # What the daemon does when the folder changes: joining = being added.
        assert sync_subscribers(self.config, self.store, self.clock) == []
        self.tick()

    @rule(email=st.sampled_from(EMAILS))
    def unsubscribe(self, email: str) -> None:
        self.store.unsubscribe(email, self.clock)
        self.blocked.add(email.lower())
        self.tick()

    @rule(key=st.sampled_from(KEYS), langs=st.sets(st.sampled_from(["en", "ru", "de"]), min_size=1))
    def publish(self, key: str, langs: set[str]) -> None:
        for lang in sorted(langs):
            self.statements.setdefault((key, lang), statement(key, lang, self.clock))
        self.tick()

    @rule(pick=st.integers(0, 30))
    def correct(self, pick: int) -> None:
        """``updated`` moves to now: everyone mailed this version gets it once more."""
        where = sorted(self.statements)[pick % len(self.statements)]
        old = self.statements[where]
        if self.clock > old.published:
            digest = old.digest + "'"
            self.statements[where] = dataclasses.replace(old, updated=self.clock, digest=digest)
        self.tick()

    @rule(pick=st.integers(0, 30))
    def fix_typo(self, pick: int) -> None:
        """The text changes, ``updated`` does not: nobody is told."""
        where = sorted(self.statements)[pick % len(self.statements)]
        old = self.statements[where]
        self.statements[where] = dataclasses.replace(old, digest=old.digest + "~")
        self.tick()

    @rule()
    def plan(self) -> None:
        catalog = build_catalog(self.statements.values(), [], self.clock)
        result = plan_edition(
            self.config, self.store, catalog, "daily", self.clock, self.clock, message_id_for=mid
        )
        assert result.created and result.problems == ()
        self.tick()

    @rule(limit=st.integers(1, 5))
    def claim(self, limit: int) -> None:
        claimed = self.store.claim(limit, self.clock)
        self.check_not_blocked(claimed)
        self.claimed.extend(claimed)

    @precondition(lambda self: self.claimed)
    @rule(count=st.integers(1, 5))
    def hand_over(self, count: int) -> None:
        batch, self.claimed = self.claimed[:count], self.claimed[count:]
        self.in_flight.extend(self.started(batch))

    def started(self, batch: list[Delivery]) -> list[Delivery]:
        allowed = self.store.record([], batch, self.clock)
        for delivery, ok in zip(batch, allowed, strict=True):
            # Refused exactly when the address was blocked since the claim.
            assert ok == (delivery.email.lower() not in self.blocked), delivery
        return [d for d, ok in zip(batch, allowed, strict=True) if ok]

    @precondition(lambda self: self.in_flight)
    @rule()
    def send_ok(self) -> None:
        self.confirm(self.in_flight)
        self.in_flight = []

    @precondition(lambda self: self.in_flight)
    @rule()
    def temporary_failure(self) -> None:
        delivery = self.in_flight.pop()
        self.store.mark_deferred(
            delivery, self.clock, self.clock + timedelta(minutes=10), 451, "try again"
        )

    @precondition(lambda self: self.in_flight)
    @rule(bounced=st.booleans())
    def permanent_failure(self, bounced: bool) -> None:
        delivery = self.in_flight.pop()
        self.store.mark_failed(delivery, self.clock, 550, "no", bounced=bounced)
        if bounced:
            self.blocked.add(delivery.email.lower())

    @rule()
    def retry_failed(self) -> None:
        self.store.retry_failed(now=self.clock)

    @rule()
    def crash(self) -> None:
        # kill -9: whatever was in flight has an unknown fate and is never confirmed.
        self.store.close()
        self.store = self.backend.open()
        self.store.recover_unknown()
        self.claimed, self.in_flight = [], []

    @rule(minutes=st.integers(1, 60 * 24))
    def wait(self, minutes: int) -> None:
        self.tick(minutes)

    def check_not_blocked(self, claimed: Sequence[Delivery]) -> None:
        for delivery in claimed:
            assert delivery.email.lower() not in self.blocked, f"claimed after block: {delivery}"

    def confirm(self, deliveries: list[Delivery]) -> None:
        self.store.mark_sent(deliveries, self.clock)
        for delivery in deliveries:
            for statement_id in delivery.statement_ids:
                key = statement_id.rsplit("-", 1)[0]
                sent = (delivery.email.lower(), key)
                assert sent not in self.confirmed, f"{key} confirmed twice to {delivery.email}"
                self.confirmed.add(sent)
            for statement_id in delivery.corrected_ids:
                key = statement_id.rsplit("-", 1)[0]
                assert (delivery.email.lower(), key) in self.confirmed or self.planned(
                    delivery.email.lower(), key
                ), f"correction of {key} to {delivery.email}, who was never mailed it"
                [(updated,)] = self.backend.sql(
                    "SELECT statement_updated_at FROM corrections"
                    " WHERE email_key = ? AND translation_key = ? AND edition_id = ?",
                    delivery.email.lower(),
                    key,
                    delivery.edition_id,
                )
                fixed = (delivery.email.lower(), key, str(updated))
                assert fixed not in self.corrections_confirmed, f"{fixed} confirmed twice"
                self.corrections_confirmed.add(fixed)

    def planned(self, email: str, key: str) -> bool:
        rows = self.backend.sql(
            "SELECT 1 FROM assigned WHERE email_key = ? AND translation_key = ?", email, key
        )
        return bool(rows)

    @invariant()
    def one_delivery_per_key_and_subscriber(self) -> None:
        rows = self.backend.sql("SELECT email_key, statement_ids FROM deliveries")
        seen: set[tuple[str, str]] = set()
        for email, ids in rows:
            for key in {i.rsplit("-", 1)[0] for i in json.loads(ids)}:
                assert (email, key) not in seen
                seen.add((email, key))

    def teardown(self) -> None:
        try:
            self.drain()
        finally:
            self.store.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def drain(self) -> None:
        """A healthy server from now on: everything not failed or cancelled gets sent."""
        self.claimed, self.in_flight = [], []
        self.store.recover_unknown()
        self.plan()  # whatever was published since the last edition
        while batch := list(self.store.claim(50, FAR_FUTURE)):
            self.check_not_blocked(batch)
            self.confirm(self.started(batch))
        counts = self.store.counts()
        event(f"confirmed sends: {min(len(self.confirmed), 10)}+")
        event(f"corrections confirmed: {min(len(self.corrections_confirmed), 3)}+")
        event(f"cancelled: {counts.cancelled > 0}, failed: {counts.failed > 0}")
        assert counts.pending == counts.sending == counts.deferred == 0
        leftovers = self.backend.sql(
            "SELECT email_key, state FROM deliveries WHERE state NOT IN ('sent', 'failed')"
        )
        # Only deliveries to blocked addresses may have been cancelled.
        assert all(email in self.blocked and state == "cancelled" for email, state in leftovers)
        self.check_corrections_planned()

    def check_corrections_planned(self) -> None:
        """Whoever was mailed a version (delivery sent) was planned its latest correction,
        unless blocked or the correction is older than digest.max_age."""
        by_id = {s.id: s for s in self.statements.values()}
        rows = self.backend.sql(
            "SELECT a.email_key, a.statement_id, a.statement_updated_at FROM assigned a"
            " JOIN deliveries d ON d.edition_id = a.edition_id AND d.email_key = a.email_key"
            " WHERE d.state = 'sent'"
        )
        oldest = self.clock - timedelta(days=30) - timedelta(minutes=30)
        for email, statement_id, mailed in rows:
            current = by_id[statement_id].updated
            if email in self.blocked or current < oldest:
                continue
            event("corrections checked")
            assert current <= datetime.fromisoformat(str(mailed).replace("Z", "+00:00")), (
                f"{email} never planned the correction of {statement_id} at {current}"
            )


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestLedgerStateMachine = LedgerMachine.TestCase


class PostgresLedgerMachine(LedgerMachine):
    BACKEND = "postgres"


PostgresLedgerMachine.TestCase.settings = LedgerMachine.TestCase.settings
TestPostgresLedgerStateMachine = pytest.mark.skipif(
    unavailable() is not None, reason=str(unavailable())
)(PostgresLedgerMachine.TestCase)
