"""Exceptions raised by statement-feeds.

The tree (every class carries the data a caller needs to act on it)::

    StatementFeedsError             the CLI: a message and exit code 2, whatever the kind
    ├── ConfigError                 bad or missing configuration: the file, an environment
    │                               variable, a template (.path, .line, .key); only that
    ├── NothingToPreview            `digest preview`: no published statement in .lang
    ├── StateError                  the state folder or database cannot be used
    │   ├── StoreError              a database operation failed (disk full, I/O error,
    │   │                           constraint): translated in state/, map_sqlite_errors
    │   └── LockHeldError           another daemon holds the state lock (.pid)
    └── DeliveryError               one message could not be delivered (.recipient, .code)
        ├── TemporaryDeliveryError  4xx, 421, dropped connection, timeout: retry later
        ├── PermanentDeliveryError  5xx: record, never retry
        │   └── RecipientRefusedError  5xx on RCPT refusing the mailbox (5.1.x, 5.2.1;
        │                              550/551/553 without an enhanced code): a bounce
        └── DeliveryHalted          a run stopped by the circuit breaker: the server refused
                                    .refusals recipients in a row with one reply (.code,
                                    .enhanced), so the SMTP settings are wrong, not them

Input problems in statement or subscriber files are *not* exceptions: they are
:class:`Problem` values collected and reported, so that one bad file never stops
the others. Third-party errors (aiosmtplib, OSError from sockets) are translated
into this tree in exactly one place per family: ``digests.mailer.map_smtp_errors`` for
SMTP, ``state.sqlite_errors.map_sqlite_errors`` for the database.
"""

from __future__ import annotations

from .domain.problems import Problem

__all__ = [
    "ConfigError",
    "DeliveryError",
    "DeliveryHalted",
    "LockHeldError",
    "NothingToPreview",
    "PermanentDeliveryError",
    "Problem",
    "RecipientRefusedError",
    "StateError",
    "StatementFeedsError",
    "StoreError",
    "TemporaryDeliveryError",
]


class StatementFeedsError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(StatementFeedsError):
    """The configuration file is missing, unreadable or has a bad value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.key = key
        self.line = line  # in the file at ``path``, when known: ``path:line: key: message``
        place = f"{path}:{line}" if path and line else path
        where = ": ".join(part for part in (place, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class NothingToPreview(StatementFeedsError):
    """``digest preview`` found no published statement in ``lang``: nothing to render."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        super().__init__(f"no published statements in language {lang!r} to preview")


class StateError(StatementFeedsError):
    """The state folder or its database cannot be used."""


class StoreError(StateError):
    """A database operation failed; ``operation`` says which, the cause is chained."""

    def __init__(self, message: str, *, operation: str = "") -> None:
        self.operation = operation
        super().__init__(message)


class LockHeldError(StateError):
    """Another process holds the lock on the state folder."""

    def __init__(self, lock_path: str, pid: int | None) -> None:
        self.lock_path = lock_path
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{lock_path} is locked by {holder}: only one daemon may run per state folder"
        )


class DeliveryError(StatementFeedsError):
    """A message was not accepted. ``code`` is the SMTP reply code when there was one."""

    temporary: bool = False

    def __init__(self, message: str, *, recipient: str = "", code: int | None = None) -> None:
        self.recipient = recipient
        self.code = code
        super().__init__(message)


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later: 4xx replies, 421, dropped connections, timeouts."""

    temporary = True


class PermanentDeliveryError(DeliveryError):
    """Not worth retrying: 5xx replies, TLS required but unavailable."""


class RecipientRefusedError(PermanentDeliveryError):
    """The server refused the recipient address with a 5xx: treat as a hard bounce."""


class DeliveryHalted(DeliveryError):
    """The circuit breaker stopped a run: ``refusals`` deliveries in a row were refused
    with the same reply (``code`` and ``enhanced`` status, e.g. 554 5.7.1), which says
    the SMTP settings are wrong rather than the addresses. Not any one recipient's."""

    def __init__(
        self, message: str, *, code: int | None, enhanced: str | None, refusals: int
    ) -> None:
        self.enhanced = enhanced
        self.refusals = refusals
        super().__init__(message, code=code)
