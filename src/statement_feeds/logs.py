"""Logging: one line per event, ``key=value`` or JSON, never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime, tzinfo
from typing import Any

from .clock import iso_time

__all__ = ["configure_logging", "event", "use_timezone"]

_SECRET_KEYS = re.compile(r"(password|token|secret|auth)", re.IGNORECASE)
_BASE = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
# Times in log lines (the line's own and datetime fields) are shown in the site's zone
# once the configuration is read (None until then: the host's zone, with its offset).
_zone: list[tzinfo | None] = [None]


def use_timezone(zone: tzinfo | None) -> None:
    """Show log times in ``zone`` from now on (``site.timezone``)."""
    _zone[0] = zone


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log event ``name`` with structured ``fields`` (rendered by the configured formatter)."""
    logger.log(level, name, extra={"fields": fields})


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"time={_time(record)}",
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
            "time": _time(record),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def _time(record: logging.LogRecord) -> str:
    return iso_time(datetime.fromtimestamp(record.created, UTC), _zone[0])


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", {}) or {})
    return {k: _field_value(k, v) for k, v in fields.items()}


def _field_value(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return iso_time(value, _zone[0])  # the same format as the line's own time
    return value


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
