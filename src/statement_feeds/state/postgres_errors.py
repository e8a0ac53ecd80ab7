"""The one place where psycopg's errors become ours, as ``sqlite_errors`` does for sqlite3.

* a connection that cannot be made (server down, bad credentials, unknown database) is a
  :class:`~statement_feeds.errors.StateError` that names the server and says what to check;
* any other database error is a :class:`~statement_feeds.errors.StoreError` naming the
  operation, with the cause chained (and the SQLSTATE, when the server sent one).

Nothing outside ``state/`` sees a psycopg exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import psycopg_pool

from ..environment import STATE_PASSWORD_ENV
from ..errors import StateError, StoreError

__all__ = ["RETRIES", "describe_url", "is_conflict", "map_connect_errors", "map_postgres_errors"]

RETRIES = 4  # tries of a transaction that hit a deadlock or serialization failure


def is_conflict(exc: StoreError) -> bool:
    """A deadlock or serialization failure: the whole transaction was rolled back, and
    trying it again (after the other one finished) is the remedy."""
    return isinstance(
        exc.__cause__, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure
    )


def describe_url(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, for messages (never a password)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


@contextmanager
def map_connect_errors(url: str) -> Iterator[None]:
    """Opening a connection (or a pool): failures say what to check."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StateError(
            f"cannot connect to the state database {describe_url(url)}: {reason}. Check "
            "[state] url, that the server is running and reachable, and the password "
            f"(${STATE_PASSWORD_ENV}, PGPASSWORD or ~/.pgpass)"
        ) from exc


@contextmanager
def map_postgres_errors(what: str) -> Iterator[None]:
    """Turn any psycopg error inside the block into :class:`StoreError` about ``what``."""
    try:
        yield
    except psycopg.Error as exc:
        code = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
        raise StoreError(
            f"cannot {what} in the state database: {exc}{code}", operation=what
        ) from exc
    except psycopg_pool.PoolTimeout as exc:
        raise StoreError(
            f"cannot {what}: no connection to the state database came free ({exc})",
            operation=what,
        ) from exc
