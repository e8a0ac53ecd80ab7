"""What the shared SQL mixins (``sql_*``) need from a database connection, and the
one wrapper that routes their errors through a backend's translation point.

``sqlite3.Connection`` is a :class:`Connection` as it is; ``postgres.PgConnection``
adapts psycopg's (``?`` placeholders become ``%s`` once per statement text). The
mixins write portable SQL with ``?`` placeholders: ``ON CONFLICT ... DO NOTHING``
(both engines speak it), ``CASE`` instead of SQLite's two-argument ``MAX``, and
``CAST(? AS INTEGER)`` where PostgreSQL could not infer a parameter's type.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

__all__ = ["Connection", "ErrorMapper", "Rows", "operation", "translate_methods"]

C = TypeVar("C", bound=type)
ErrorMapper = Callable[[str], AbstractContextManager[None]]


class Rows(Protocol):
    """The result of a statement: rows to fetch or iterate, and the rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Rows: ...


def translate_methods(cls: C, mapper: ErrorMapper) -> C:
    """Wrap every public method ``cls`` has (its own and its mixins') in ``mapper``.

    Each backend applies this once, to its store class, with its own translation point
    (``sqlite_errors`` or ``postgres_errors``): the shared mixins stay backend-free.
    Generator and context-manager methods are left alone: they translate inside.
    """
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        for name, member in list(vars(klass).items()):
            if name in seen or name.startswith("_") or not inspect.isfunction(member):
                continue
            seen.add(name)
            if inspect.isgeneratorfunction(member) or hasattr(member, "__wrapped__"):
                continue
            setattr(cls, name, _wrap(member, operation(name), mapper))
    return cls


# The first words of the store's method names that are verbs ("plan edition"); the
# others name what they read ("subscriber states"), so their errors say "read ...".
_VERBS = frozenset(
    [
        "add",
        "claim",
        "clear",
        "close",
        "confirm",
        "hit",
        "mark",
        "plan",
        "record",
        "recover",
        "release",
        "remember",
        "renew",
        "retry",
        "set",
        "sync",
        "unsubscribe",
    ]
)


def operation(name: str) -> str:
    """What an error of method ``name`` says could not be done: "cannot {operation}"."""
    words = name.split("_")
    return " ".join(words if words[0] in _VERBS else ["read", *words])


def _wrap(method: Callable[..., Any], what: str, mapper: ErrorMapper) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with mapper(what):
            return method(*args, **kwargs)

    return call
