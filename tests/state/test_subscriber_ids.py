"""Subscriber ids in the state store: every known address has one, from migration 7 on."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pg_helpers import AnyStore, Backend
from statement_feeds.domain.tokens import subscriber_id
from statement_feeds.domain.web_subscribers import Preferences
from statement_feeds.errors import StateError
from statement_feeds.state.sqlite import SqliteStore, to_ts

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)


def unmapped(store: AnyStore, backend: Backend) -> list[str]:
    """Addresses the store knows without an id row for its own key."""
    key = store.subscriber_id_key()
    emails = [row[0] for row in backend.sql("SELECT email FROM subscribers")]
    ids = dict(backend.sql("SELECT id, email FROM subscriber_ids"))
    return [e for e in emails if ids.get(subscriber_id(key, e)) != e]


def test_every_way_of_recording_an_address_maps_its_id(
    backend: AnyStore, make_backend: Backend
) -> None:
    store = backend
    store.sync_subscribers(["Listed@X.org", "listed@x.org", "other@x.org"], T0)
    store.sync_subscribers(["listed@x.org", "third@x.org"], T0 + timedelta(days=1))
    store.unsubscribe("gone@x.org", T0)
    store.mark_bounced("bounced@x.org", T0, "550 no such user")
    store.add_confirmation(
        "t1", "Web@X.org", Preferences(("en",), "daily"), T0, T0 + timedelta(days=2)
    )
    assert store.confirm_subscription("t1", T0) is not None
    assert unmapped(store, make_backend) == []
    assert store.joined_at("third@x.org") == T0 + timedelta(days=1)  # first sighting only
    assert store.joined_at("listed@x.org") == T0
    sid = subscriber_id(store.subscriber_id_key(), "LISTED@x.org")
    assert store.address_for_id(sid) == "listed@x.org"
    assert store.address_for_id("no-such-id") is None


def test_the_id_key_is_random_per_database_and_stable(
    tmp_path: Path, make_backend: Backend
) -> None:
    with make_backend.open() as first, SqliteStore.open(tmp_path / "b") as other:
        key = first.subscriber_id_key()
        assert len(key) == 32 and key != other.subscriber_id_key()
    with make_backend.open() as again:
        assert again.subscriber_id_key() == key


def test_migration_4_gives_every_existing_address_its_id(tmp_path: Path) -> None:
    """An upgrade: a database from before version 4 (7 once), with addresses and pending mail."""
    with SqliteStore.open(tmp_path) as store:
        path = store.path
    raw = sqlite3.connect(path, isolation_level=None)
    raw.executescript(
        "DROP TABLE subscriber_ids; DROP TABLE settings; DROP INDEX rate_events_at;"
        " DELETE FROM schema_migrations WHERE version = 4;"
    )
    raw.executemany(
        "INSERT INTO subscribers (email, joined_at) VALUES (?, ?)",
        [(f"user{n}@x.org", to_ts(T0)) for n in range(12_345)],
    )
    raw.close()
    with SqliteStore.open(tmp_path) as store:
        assert unmapped(store, Backend("sqlite", tmp_path)) == []
        key = store.subscriber_id_key()
        assert store.address_for_id(subscriber_id(key, "user12344@x.org")) == "user12344@x.org"


def test_a_damaged_id_key_is_a_state_error(make_backend: Backend) -> None:
    make_backend.open().close()
    make_backend.sql("UPDATE settings SET value = 'not hex' WHERE name = 'subscriber_id_key'")
    with pytest.raises(StateError, match="cannot open the state database"):
        make_backend.open()
