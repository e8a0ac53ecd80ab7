"""Capture the events our code logs (``logs.event``), whatever logging was configured.

``configure_logging`` (run by any CLI test in this process) stops propagation at the
``statement_feeds`` logger, so pytest's ``caplog`` may see nothing: this handler sits
on that logger itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Events", "capture_events"]


class Events(logging.Handler):
    """The records logged while capturing; ``text()`` has every event with its fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.getMessage()} {getattr(r, 'fields', {})}" for r in list(self.records))


@contextmanager
def capture_events(level: int = logging.INFO) -> Iterator[Events]:
    logger = logging.getLogger("statement_feeds")
    handler, old_level = Events(), logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level, old_level) if old_level else level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
