"""The one place where sqlite3's errors become ours (``StoreError``), as SMTP's do in
``digests.mailer.map_smtp_errors``. Nothing outside ``state/`` sees a sqlite3 exception."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from ..errors import StoreError
from .sql_connection import translate_methods

__all__ = ["map_sqlite_errors", "translated"]

C = TypeVar("C", bound=type)


@contextmanager
def map_sqlite_errors(what: str) -> Iterator[None]:
    """Turn any sqlite3 error inside the block into :class:`StoreError` about ``what``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {what} in the state database: {exc}", operation=what) from exc


def translated(cls: C) -> C:
    """Wrap every public method of ``cls`` and its mixins in :func:`map_sqlite_errors`.

    Generator and context-manager methods are left alone: they translate inside.
    """
    return translate_methods(cls, map_sqlite_errors)
