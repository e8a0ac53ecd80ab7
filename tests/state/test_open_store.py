"""The state store as an interface: ``open_store`` gives a ``Store``, whatever the backend."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from statement_feeds.config import load_config
from statement_feeds.errors import StoreError
from statement_feeds.state import api
from statement_feeds.state.api import Store
from statement_feeds.state.open import open_store
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


def test_sqlite_store_is_a_store(tmp_path: Path) -> None:
    store: Store = SqliteStore.open(tmp_path)  # mypy checks the types; below, the names
    with store:
        for protocol in PROTOCOLS:
            for name, member in vars(protocol).items():
                if name.startswith("_") or not callable(member):
                    continue
                wanted = list(inspect.signature(member).parameters)
                implemented = list(inspect.signature(getattr(SqliteStore, name)).parameters)
                assert implemented == wanted, f"SqliteStore.{name} differs from {protocol}"


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
    tmp_path: Path, call: Callable[[SqliteStore], object]
) -> None:
    store = SqliteStore.open(tmp_path)
    store.close()  # any call now fails in sqlite3 (a closed connection)
    with pytest.raises(StoreError):
        call(store)
