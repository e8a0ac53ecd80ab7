"""The environment variables statement-feeds reads, each read and validated here only.

Every ``os.environ`` lookup of the program is in this module (tests/test_architecture.py
checks it), so that a bad value is a :class:`ConfigError` naming the variable (exit code
2), never a ``ValueError`` from wherever the value happened to be used. The
configuration file's own reader is :mod:`statement_feeds.config`, which takes the config
path and the SMTP password from here. Each function takes an optional mapping instead of
the process environment, for tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from .errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "FAKE_NOW_ENV",
    "FAKE_START_ENV",
    "IMAP_PASSWORD_ENV",
    "METRICS_TOKEN_ENV",
    "NOTIFY_SOCKET_ENV",
    "PASSWORD_ENV",
    "STATE_PASSWORD_ENV",
    "TRUSTED_PROXIES_ENV",
    "Environ",
    "check_environment",
    "config_file",
    "fake_now",
    "fake_start",
    "imap_password",
    "metrics_token",
    "notify_socket",
    "smtp_password",
    "state_password",
    "trusted_proxies",
]

CONFIG_ENV = "STATEMENT_FEEDS_CONFIG"
PASSWORD_ENV = "STATEMENT_FEEDS_SMTP_PASSWORD"
TRUSTED_PROXIES_ENV = "STATEMENT_FEEDS_TRUSTED_PROXIES"
METRICS_TOKEN_ENV = "STATEMENT_FEEDS_METRICS_TOKEN"
SECRET_KEY_ENV = "STATEMENT_FEEDS_SECRET_KEY"
STATE_PASSWORD_ENV = "STATEMENT_FEEDS_STATE_PASSWORD"
IMAP_PASSWORD_ENV = "STATEMENT_FEEDS_IMAP_PASSWORD"
FAKE_NOW_ENV = "STATEMENT_FEEDS_FAKE_NOW"
FAKE_START_ENV = "STATEMENT_FEEDS_FAKE_START"
# systemd's, not ours; read here all the same, so that one module knows the environment.
NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
Environ = Mapping[str, str] | None  # None: the process environment, read at the call


def _get(name: str, environ: Environ) -> str:
    return (os.environ if environ is None else environ).get(name, "")


def check_environment(environ: Environ = None) -> None:
    """Validate every variable that has rules: a bad one stops any command up front
    (exit code 2), as a bad key in the configuration file does, and not later inside
    the daemon."""
    trusted_proxies(environ)
    fake_now(environ)
    fake_start(environ)


def config_file(environ: Environ = None) -> str:
    """``$STATEMENT_FEEDS_CONFIG``: the configuration file when ``--config`` is not given."""
    return _get(CONFIG_ENV, environ)


def secret_keys(environ: Environ = None) -> str:
    """``$STATEMENT_FEEDS_SECRET_KEY``: signing keys, comma-separated (checked by
    ``state.secrets``, which names the variable when one is too short)."""
    return _get(SECRET_KEY_ENV, environ)


def smtp_password(environ: Environ = None) -> str:
    """The SMTP password: never in the file, only here."""
    return _get(PASSWORD_ENV, environ)


def state_password(environ: Environ = None) -> str:
    """The PostgreSQL password of ``[state] url``: never in the file. Empty: libpq's own
    ways apply (``PGPASSWORD``, ``~/.pgpass``, trust or peer authentication)."""
    return _get(STATE_PASSWORD_ENV, environ)


def imap_password(environ: Environ = None) -> str:
    """The password of the mailbox ``bounces process --imap`` reads: never in the file."""
    return _get(IMAP_PASSWORD_ENV, environ)


def trusted_proxies(environ: Environ = None) -> int:
    """How many reverse-proxy hops' ``X-Forwarded-For`` the rate limit believes (0)."""
    text = _get(TRUSTED_PROXIES_ENV, environ).strip()
    if text and not (text.isascii() and text.isdigit()):
        raise ConfigError(
            f"must be a whole number of proxy hops (0, 1, 2, ...), got {text!r}",
            key=TRUSTED_PROXIES_ENV,
        )
    return int(text or 0)


def metrics_token(environ: Environ = None) -> str:
    """The bearer token ``/metrics`` requires; empty: none required."""
    return _get(METRICS_TOKEN_ENV, environ)


def fake_now(environ: Environ = None) -> datetime | None:
    """A pinned "now" for subprocess tests, as aware UTC (a naive one is local time)."""
    pinned = _date_time(FAKE_NOW_ENV, environ)
    return pinned.astimezone(UTC) if pinned is not None else None


def fake_start(environ: Environ = None) -> datetime | None:
    """Where the daemon's advancing fake clock starts, for subprocess tests."""
    return _date_time(FAKE_START_ENV, environ)


def _date_time(name: str, environ: Environ) -> datetime | None:
    text = _get(name, environ)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"must be an ISO 8601 date-time (e.g. 2024-05-01T06:59:58+01:00), got {text!r}",
            key=name,
        ) from None


def notify_socket(environ: Environ = None) -> str:
    """systemd's ``$NOTIFY_SOCKET`` (Type=notify); empty when systemd did not start us."""
    return _get(NOTIFY_SOCKET_ENV, environ)
