"""The one place where sqlite3's errors become ours (``StoreError``), as SMTP's do in
``digests.mailer.map_smtp_errors``. Nothing outside ``state/`` sees a sqlite3 exception."""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import StoreError

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
    """Wrap every public method of ``cls`` (plain functions) in :func:`map_sqlite_errors`.

    Generator and context-manager methods are left alone: they translate inside.
    """
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        if inspect.isgeneratorfunction(member) or hasattr(member, "__wrapped__"):
            continue
        setattr(cls, name, _wrap(member, name.replace("_", " ")))
    return cls


def _wrap(method: Callable[..., Any], what: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with map_sqlite_errors(what):
            return method(*args, **kwargs)

    return call
