"""A throw-away PostgreSQL database per test, migrated by the store (coordination
uses its ``daemons`` table).

The server is ``$STATEMENT_FEEDS_TEST_PG`` (a base URL; default the local one with trust
auth). When no server answers, the test is skipped saying so.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from statement_feeds.state.postgres_migrations import migrate

DEFAULT_BASE = "postgresql://postgres@127.0.0.1:5432/postgres"


def base_url() -> str:
    return os.environ.get("STATEMENT_FEEDS_TEST_PG") or DEFAULT_BASE


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = (parts.hostname or "127.0.0.1") + f":{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@contextmanager
def fresh_database(*, daemons_table: bool = True) -> Iterator[str]:
    """The URL of a new, empty database (dropped afterwards, connections and all)."""
    base = base_url()
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers at {base} ($STATEMENT_FEEDS_TEST_PG): {exc}")
    name = f"sf_coord_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(base, name)
        try:
            if daemons_table:
                # The store's own migrations make the table, as on a real site.
                with psycopg.connect(url, autocommit=True) as conn:
                    migrate(conn, url)
            yield url
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def execute(url: str, query: str, params: object = None) -> list[tuple[object, ...]]:
    """One statement on a connection of its own (the test's view of the database)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def leader_backend(url: str) -> int | None:
    """The server pid of the session holding the leader's advisory lock."""
    from statement_feeds.state.postgres_coordination import LEADER_KEY

    rows = execute(
        url,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND ((classid::bigint << 32) | objid::bigint) = %s "
        # pg_locks lists every database's locks: other tests run beside this one.
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [LEADER_KEY],
    )
    return int(rows[0][0]) if rows else None


def terminate(url: str, pid: int) -> None:
    execute(url, "SELECT pg_terminate_backend(%s)", [pid])
