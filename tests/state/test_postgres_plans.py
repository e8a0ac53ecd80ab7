"""Query plans the sender depends on, on PostgreSQL: the one-statement ``record`` stays
on the primary key, its connection plans repeated statements once (``plan_cache_mode``,
undone when the store is closed and its connection goes back to the pool), and the
takeover that runs at every claim reads an index of the messages in flight, not the
whole ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from statement_feeds.domain.subscribers import email_key
from statement_feeds.state import postgres, postgres_writer
from statement_feeds.state.api import Outcome, PlannedDelivery
from statement_feeds.state.postgres import PostgresStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)


def _planned(store: PostgresStore, count: int) -> None:
    emails = [f"user{n:05}@x.org" for n in range(count)]
    planned = [PlannedDelivery(e, "", "en", ("s-en",), ("s",)) for e in emails]
    store.plan_edition("daily", T0, T0, planned, lambda e, m: f"<{e}.{m}@example.org>")


def _plan_text(store: PostgresStore, sql: str, sent: list[Any], start: list[Any]) -> str:
    params = {
        "commit": "off",
        "stamp": postgres.to_ts(T0),
        "me": store.claimant,
        "sent_keys": [email_key(d.email) for d in sent],
        "sent_editions": [d.edition_id for d in sent],
        "start_keys": [email_key(d.email) for d in start],
        "start_editions": [d.edition_id for d in start],
    }
    rows = store._db.raw.execute("EXPLAIN " + sql, params).fetchall()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("analysed", [False, True], ids=["no-statistics", "analysed"])
def test_record_finds_its_rows_by_primary_key_on_a_fresh_edition(
    pg_url: str, analysed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A freshly planned edition, its statistics not yet gathered, most of it claimed
    # by this sender: the state in which ``claimed_by = ?`` drew the planner to the
    # claims index (every claimed row read and filtered on each call). And the same
    # once the plan's commit analysed the tables, as an edition of 10,000 or more is.
    monkeypatch.setattr(postgres, "ANALYZE_AFTER", 1000 if analysed else 10**9)
    with PostgresStore(pg_url) as store:
        _planned(store, 5000)
        tuples = store._db.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'deliveries'"
        ).fetchone()[0]
        assert tuples == (5000 if analysed else -1)
        claimed = list(store.claim(2000, T0))
        text = _plan_text(store, postgres_writer.SENT_AND_STARTED, claimed[:4], claimed[4:8])
        assert "deliveries_claims" not in text, text
        # Both updates find their rows by address: by primary key, or (once analysed, with
        # one edition in the ledger) by the address index, as selective here.
        by_address = text.count("using deliveries_pkey") + text.count("using deliveries_email")
        assert by_address == 2, text
        # and it does what it says: four sent, four handed over
        store.record([], claimed[:4], T0)
        allowed = store.record([Outcome(d, "sent") for d in claimed[:4]], claimed[4:8], T0)
        assert allowed == [True] * 4
        assert (store.counts().sent, store.counts().sending) == (4, 4)


def test_the_equality_form_would_use_the_claims_index(pg_url: str) -> None:
    # What the test above guards against, shown on the same data: without IS NOT
    # DISTINCT FROM the planner picks the claims index (so the test can fail).
    with PostgresStore(pg_url) as store:
        _planned(store, 5000)
        claimed = list(store.claim(2000, T0))
        plain = postgres_writer.SENT_AND_STARTED.replace(
            "claimed_by IS NOT DISTINCT FROM %(me)s", "claimed_by = %(me)s"
        )
        assert "deliveries_claims" in _plan_text(store, plain, claimed[:4], claimed[4:8])


def _plan_cache_mode(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SHOW plan_cache_mode").fetchone()
    assert row is not None
    return str(row[0])


def test_a_sending_store_plans_generically_and_resets_it_on_close(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        _planned(store, 20)
        raw = store._db.raw
        assert _plan_cache_mode(raw) == "auto"  # a store that does not send: untouched
        claimed = list(store.claim(10, T0))
        store.record([], claimed[:2], T0)
        assert _plan_cache_mode(raw) == "force_generic_plan"
    # The connection is back in the pool, reset: whoever borrows it next plans as usual.
    assert not raw.closed
    assert _plan_cache_mode(raw) == "auto"


def _takeover_sql(store: PostgresStore) -> tuple[str, tuple[Any, ...]]:
    """The takeover statement exactly as ``claim`` runs it, with its parameters."""
    seen: list[tuple[str, tuple[Any, ...]]] = []
    execute = store._db.execute

    def spy(sql: str, parameters: Any = (), /) -> Any:
        if "state = 'sending'" in sql:
            seen.append((sql, tuple(parameters)))
        return execute(sql, parameters)

    store._db.execute = spy  # type: ignore[method-assign]
    try:
        store.claim(1, T0)
    finally:
        del store._db.execute
    assert len(seen) == 1, seen
    return seen[0]


def test_takeover_reads_the_in_flight_index_not_the_whole_ledger(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        _planned(store, 5000)
        store._db.raw.execute("ANALYZE deliveries")
        claimed = list(store.claim(100, T0))
        store.record([], claimed[:4], T0)
        text, params = _takeover_sql(store)
        numbered = text
        for n in range(1, len(params) + 1):  # PREPARE wants $1, $2 for ? ?
            numbered = numbered.replace("?", f"${n}", 1)
        raw = store._db.raw
        for mode in ("auto", "force_generic_plan"):  # as any store, and as a sender's
            raw.execute(f"SET plan_cache_mode = {mode}")
            types = ", ".join("text" for _ in params)  # timestamps and claimants are text
            raw.execute(f"PREPARE takeover ({types}) AS {numbered}")
            try:
                args = sql.SQL(", ").join(sql.Literal(value) for value in params)
                query = sql.SQL("EXPLAIN EXECUTE takeover ({})").format(args)
                rows = raw.execute(query).fetchall()
            finally:
                raw.execute("DEALLOCATE takeover")
            text = "\n".join(row[0] for row in rows)
            assert "deliveries_lapsing" in text, (mode, text)
            assert "Seq Scan on deliveries" not in text, (mode, text)
