"""Logging: one line per event, ``key=value`` or JSON, never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

__all__ = ["configure_logging", "event"]

_SECRET_KEYS = re.compile(r"(password|token|secret|auth)", re.IGNORECASE)
_BASE = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log event ``name`` with structured ``fields`` (rendered by the configured formatter)."""
    logger.log(level, name, extra={"fields": fields})


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"time={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname.lower()}",
            f"event={_quote(record.getMessage())}",
        ]
        parts += [f"{key}={_quote(value)}" for key, value in _fields(record).items()]
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", {}) or {})
    return {k: ("***" if _SECRET_KEYS.search(k) else v) for k, v in fields.items()}


def _quote(value: Any) -> str:
    text = str(value)
    if text and not re.search(r'[\s="\\]', text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def configure_logging(verbosity: int = 0, fmt: str = "text") -> None:
    """verbosity: -1 quiet (warnings), 0 info, 1 debug."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _KeyValueFormatter())
    root = logging.getLogger("statement_feeds")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
