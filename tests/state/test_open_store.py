"""The state store as an interface: ``open_store`` gives a ``Store``, whatever the backend."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pg_helpers import Backend
from statement_feeds.config import load_config
from statement_feeds.errors import StoreError
from statement_feeds.state import api
from statement_feeds.state.api import Store
from statement_feeds.state.open import open_store
from statement_feeds.state.postgres import PostgresStore
from statement_feeds.state.sqlite import SqliteStore

PROTOCOLS = [api.Ledger, api.SubscriberStore, api.WebSignups, api.StoreMetrics, Store]
T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)


def test_open_store_gives_a_store(tmp_path: Path) -> None:
    with open_store(tmp_path / "state") as store:
        assert isinstance(store, Store)  # every member of every protocol, at run time
        assert store.edition_count() == 0
    assert (tmp_path / "state" / "state.sqlite").is_file()


def test_open_store_takes_a_config(tmp_path: Path, make_site: Callable[..., Path]) -> None:
    config = load_config(make_site(tmp_path))
    with open_store(config) as store:
        assert isinstance(store, Store)
    assert (config.paths.state / "state.sqlite").is_file()


def test_open_store_takes_postgresql_from_the_config(
    tmp_path: Path, make_site: Callable[..., Path], pg_url: str
) -> None:
    config = load_config(make_site(tmp_path, extra_toml=f'\n[state]\nurl = "{pg_url}"\n'))
    with open_store(config, lease=timedelta(seconds=30)) as store:
        assert isinstance(store, PostgresStore) and isinstance(store, Store)
        assert store.shared and store.lease == timedelta(seconds=30)
    assert not config.paths.state.exists()  # nothing of the state on this host's disk


def test_each_store_is_a_store(make_backend: Backend) -> None:
    store: Store = make_backend.open()  # mypy checks the types; below, the names
    kind = type(store)
    with store:
        assert isinstance(store, Store)
        assert store.shared == (kind is PostgresStore)
        for protocol in PROTOCOLS:
            for name, member in vars(protocol).items():
                if name.startswith("_") or not callable(member):
                    continue
                wanted = list(inspect.signature(member).parameters)
                implemented = list(inspect.signature(getattr(kind, name)).parameters)
                assert implemented == wanted, f"{kind.__name__}.{name} differs from {protocol}"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.web_subscribers(),  # sql_web
        lambda s: s.joined_at("a@example.org"),  # sql_subscribers
        lambda s: s.edition_count(),  # sql_editions
        lambda s: s.counts(),  # sql_deliveries
    ],
)
def test_every_part_turns_database_errors_into_store_errors(
    make_backend: Backend, call: Callable[[SqliteStore | PostgresStore], object]
) -> None:
    store = make_backend.open()
    store.close()  # any call now fails in the driver (a closed connection)
    with pytest.raises(StoreError):
        call(store)


def test_a_connection_the_server_dropped_is_a_store_error(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        store.counts()
        Backend("postgres", pg_url).sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with pytest.raises(StoreError, match="cannot read counts in the state database"):
            store.counts()


def test_a_pooled_connection_the_server_dropped_is_replaced(pg_url: str) -> None:
    PostgresStore(pg_url).close()  # its connection waits in the pool
    Backend("postgres", pg_url).sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with PostgresStore(pg_url) as store:  # a server restart meanwhile: still usable
        assert store.edition_count() == 0
