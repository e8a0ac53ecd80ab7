"""Work in batches: the state store's IN lists and executemany calls, and planning's reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["CHUNK", "chunks"]

CHUNK = 5000  # rows per executemany / IN list: well under SQLite's parameter limit (32766)
T = TypeVar("T")


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
