"""Reading the TOML tables of ``config``: typed values whose errors name the key.

:class:`Reader` reads only keys declared in ``config_keys.SECTIONS``; :func:`base_url`
and :func:`parse_duration` are the value forms more than one section uses.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from .config_keys import SECTIONS
from .errors import ConfigError

__all__ = ["Reader", "base_url", "parse_duration"]


class Reader:
    """Typed access to the TOML tables with errors that name the key."""

    def __init__(self, path: str, raw: dict[str, Any]) -> None:
        self.path = path
        self.raw = raw

    def table(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table", path=self.path, key=name)
        return value

    def value(self, table: str, key: str, default: Any) -> Any:
        if key not in SECTIONS.get(table, ()):
            # A programming error: check_keys would refuse this key in every file.
            raise LookupError(f"{table}.{key} is read but not declared in config_keys.SECTIONS")
        return self.table(table).get(key, default)

    def string(self, table: str, key: str, default: str | None = None) -> str:
        value = self.value(table, key, default)
        if value is None:
            raise ConfigError(
                f'required; add {key} = "..." under [{table}]', path=self.path, key=f"{table}.{key}"
            )
        if not isinstance(value, str):
            raise ConfigError("must be a string", path=self.path, key=f"{table}.{key}")
        return value

    def strings(self, table: str, key: str, example: str) -> list[str]:
        """A list of strings (default: empty); ``example`` shows the form in the error."""
        value = self.value(table, key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"must be a list of strings, e.g. {key} = {example}",
                path=self.path,
                key=f"{table}.{key}",
            )
        return value

    def integer(
        self, table: str, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.value(table, key, default)
        too_big = maximum is not None and isinstance(value, int) and value > maximum
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
            upto = "" if maximum is None else f" and <= {maximum}"
            raise ConfigError(
                f"must be a whole number >= {minimum}{upto}, got {value!r}",
                path=self.path,
                key=f"{table}.{key}",
            )
        return value

    def boolean(self, table: str, key: str, default: bool) -> bool:
        value = self.value(table, key, default)
        if not isinstance(value, bool):
            raise ConfigError(
                f"must be true or false, got {value!r}", path=self.path, key=f"{table}.{key}"
            )
        return value

    def duration(self, table: str, key: str, default: str) -> timedelta:
        text = self.string(table, key, default)
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise ConfigError(str(exc), path=self.path, key=f"{table}.{key}") from None

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.path, key=key)


def base_url(reader: Reader, table: str, key: str, value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise reader.error(f"{table}.{key}", f"must be an absolute http(s) URL, got {value!r}")
    return value if value.endswith("/") else value + "/"


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``"30d"`` → 30 days. Units: s, m, h, d, w."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit, e.g. 6h or 30d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
