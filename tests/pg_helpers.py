"""Real PostgreSQL for the tests: a fresh database per test, and both store backends.

``pg_url`` creates a database with a random name on the server that
``$STATEMENT_FEEDS_TEST_PG`` names (a base URL; default ``DEFAULT_BASE``), yields its
URL and drops it afterwards; a test that needs it is skipped, saying why, when no
server answers. ``make_backend`` is parametrised over ``BACKENDS``: a
:class:`Backend` that opens stores on one state (a SQLite folder, or the test's
PostgreSQL database) and runs SQL behind their back; ``backend`` is an open store.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest

from statement_feeds.state.postgres import PostgresStore, close_pools
from statement_feeds.state.sql_parts import CLAIM_LEASE
from statement_feeds.state.sqlite import DB_NAME, SqliteStore

DEFAULT_BASE = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgres"]
AnyStore = SqliteStore | PostgresStore


def base_url() -> str:
    return os.environ.get("STATEMENT_FEEDS_TEST_PG", "") or DEFAULT_BASE


@cache
def unavailable() -> str | None:
    """Why no PostgreSQL server can be used (None: it can)."""
    try:
        with psycopg.connect(base_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL server at $STATEMENT_FEEDS_TEST_PG or {DEFAULT_BASE}: {first}"
    return None


def url_of(database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(base_url())
    info["dbname"] = database
    user = info.get("user", "")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", 5432)
    password = f":{info['password']}" if info.get("password") else ""
    return f"postgresql://{user}{password}@{host}:{port}/{database}"


def migrated_to(conn: psycopg.Connection[Any], version: int) -> None:
    """Give an empty database the schema of ``version`` (PostgreSQL's migrations up to it,
    recorded as applied): an older database, for a migration test to upgrade."""
    from statement_feeds.state import postgres_migrations

    postgres_migrations.applied_versions(conn)
    for number, function in postgres_migrations.MIGRATIONS[:version]:
        function(conn)
        conn.execute("INSERT INTO schema_migrations VALUES (%s, 'then')", (number,))


def create_database() -> str:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    name = "sf_test_" + secrets.token_hex(6)
    with psycopg.connect(base_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def drop_database(name: str) -> None:
    close_pools()  # the stores' pooled connections
    with psycopg.connect(base_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = create_database()
    try:
        yield url_of(name)
    finally:
        drop_database(name)


class Backend:
    """One state on one backend: open stores on it, run SQL behind their back."""

    def __init__(self, name: str, where: Path | str) -> None:
        self.name = name
        self.where = where

    def open(self, lease: timedelta = CLAIM_LEASE) -> AnyStore:
        if isinstance(self.where, Path):
            return SqliteStore.open(self.where, lease=lease)
        return PostgresStore(self.where, lease=lease)

    def sql(self, statement: str, *params: Any) -> list[Any]:
        """Run one statement (``?`` placeholders), committed; its rows (if any)."""
        if isinstance(self.where, Path):
            db = sqlite3.connect(self.where / DB_NAME)
            try:
                rows = db.execute(statement, params).fetchall()
                db.commit()
                return rows
            finally:
                db.close()
        with psycopg.connect(self.where, autocommit=True) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def state_toml(self) -> str:
        """The ``[state]`` section of a config using this state ("" for SQLite)."""
        return "" if isinstance(self.where, Path) else f'\n[state]\nurl = "{self.where}"\n'


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", tmp_path / "state")
        return
    name = create_database()
    try:
        yield Backend("postgres", url_of(name))
    finally:
        drop_database(name)


@pytest.fixture
def backend(make_backend: Backend) -> Iterator[AnyStore]:
    with make_backend.open() as store:
        yield store
