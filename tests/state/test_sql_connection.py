"""The stores' errors say what could not be done in words (``sql_connection.operation``):
"cannot read subscriber states", not "cannot subscriber states"."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from statement_feeds.errors import StoreError
from statement_feeds.state.sqlite import DB_NAME, SqliteStore

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def test_a_failed_query_says_what_it_was_reading(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path) as store:
        store.sync_subscribers(["a@x.org"], T0)
        with sqlite3.connect(tmp_path / DB_NAME) as behind_its_back:
            behind_its_back.execute("DROP TABLE assigned")
        with pytest.raises(StoreError) as failed:
            store.subscriber_states(["a@x.org"], ["s1"])
    assert str(failed.value).startswith("cannot read subscriber states in the state database")
    assert "no such table: assigned" in str(failed.value)
    assert failed.value.operation == "read subscriber states"
