"""A fresh PostgreSQL database per test (for `state copy`), and table contents to compare.

``$STATEMENT_FEEDS_TEST_PG`` (a base URL; default the local server, trust auth) says
where; a test that needs it is skipped, saying why, when no server answers.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

BASE = os.environ.get("STATEMENT_FEEDS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(BASE, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {urlsplit(BASE).netloc} ($STATEMENT_FEEDS_TEST_PG): {exc}")


def with_database(name: str) -> str:
    parts = urlsplit(BASE)
    return urlunsplit(parts._replace(path=f"/{name}"))


def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards (a generator for fixtures)."""
    name = f"sf_copy_{secrets.token_hex(6)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(name)
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _normal(value: Any, timestamp: bool) -> Any:
    """A SQLite value as the target should hold it (an aware UTC datetime for times)."""
    if timestamp and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def sqlite_rows(database: Path, table: str, stamps: set[str]) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as db:
        cursor = db.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        rows = [
            tuple(_normal(v, n in stamps) for n, v in zip(names, row, strict=True))
            for row in cursor
        ]
    return sorted(rows, key=repr)


def columns(database: Path, table: str) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]


def postgres_rows(
    url: str, table: str, names: list[str], *, stamps: set[str] | None = None, where: str = ""
) -> list[tuple[Any, ...]]:
    """The rows of ``table`` (``where``: only the row whose email is this), with the
    timestamp columns in ``stamps`` as aware UTC datetimes whether stored as
    timestamptz or as text."""
    listed = ", ".join(f'"{n}"' for n in names)
    query = f'SELECT {listed} FROM "{table}"' + (" WHERE email = %s" if where else "")
    with psycopg.connect(url) as conn:
        rows = conn.execute(query.encode(), (where,) if where else None).fetchall()
    stamps = stamps or set()
    normal = (
        tuple(_normal(v, n in stamps) for n, v in zip(names, row, strict=True)) for row in rows
    )
    return sorted(normal, key=repr)


def postgres_count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}"'.encode()).fetchone()
    assert row is not None
    return int(row[0])
