"""Handing messages over: the :class:`Messenger` protocol, and which one a run uses.

:class:`~.smtp.SmtpMessenger` (aiosmtplib, pooled connections) or
:class:`~.maildir.MaildirMessenger`. Everything the sending loop sees of a failure
goes through :func:`~.smtp_errors.map_smtp_errors`, the one place where aiosmtplib's
exceptions, socket errors and timeouts become ``errors.TemporaryDeliveryError`` (retry
later), ``PermanentDeliveryError`` (record, never retry), ``RecipientRefusedError`` (a
bounce) or ``ConfigError`` (this run cannot send anything: TLS required but
unavailable, certificate not trusted, login refused). Passwords are never put in
messages or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol

from ..config import SmtpConfig

# Re-exported: this module is where callers and tests have always found them.
from .maildir import MaildirMessenger
from .smtp import DATA_TIMEOUT, SmtpMessenger
from .smtp_errors import enhanced_status, map_smtp_errors, reply_status
from .smtp_internals import data_payload

__all__ = [
    "DATA_TIMEOUT",
    "MaildirMessenger",
    "Messenger",
    "SmtpMessenger",
    "data_payload",
    "enhanced_status",
    "make_messenger",
    "map_smtp_errors",
    "reply_status",
]

log = logging.getLogger(__name__)


class Messenger(Protocol):
    """Hands one message to its recipient's mail system; raises ``DeliveryError``.

    ``ready`` (the ledger's hand-over, see ``record.GroupCommit.hand_over``) gates the
    point of no return: the envelope may be opened meanwhile, but no byte of the
    message leaves before it resolves True. When it resolves False or fails, nothing
    is sent and ``send`` returns False; otherwise it returns True once accepted.
    """

    async def send(
        self, sender: str, recipient: str, message: bytes, ready: Awaitable[bool] | None = None
    ) -> bool: ...

    async def close(self) -> None: ...


def make_messenger(config: SmtpConfig, outbox: Path) -> Messenger:
    """SMTP when ``smtp.host`` is set, else the Maildir at ``paths.outbox``."""
    if config.host:
        return SmtpMessenger(config)
    log.info("smtp.host is empty: writing messages to the Maildir %s", outbox)
    return MaildirMessenger(outbox)
