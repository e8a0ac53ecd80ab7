"""SMTP failures → the project's error tree, in one place: :func:`map_smtp_errors`.

aiosmtplib's exceptions, socket errors and timeouts become
``errors.TemporaryDeliveryError`` (retry later), ``PermanentDeliveryError`` (record,
never retry), ``RecipientRefusedError`` (a bounce) or ``ConfigError`` (this run cannot
send anything: TLS required but unavailable, certificate not trusted, login refused).
Passwords are never put in messages or logs.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import aiosmtplib

from ..errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    RecipientRefusedError,
    TemporaryDeliveryError,
)

__all__ = ["enhanced_status", "map_smtp_errors", "reply_status"]


@contextmanager
def map_smtp_errors(recipient: str) -> Iterator[None]:
    """Translate whatever sending raised into the project's error tree."""
    try:
        yield
    except (DeliveryError, ConfigError):
        raise
    except aiosmtplib.SMTPRecipientRefused as exc:
        if exc.code >= 500:
            raise _refused(exc.code, exc.message, recipient) from exc
        raise _by_code(exc.code, f"recipient deferred: {exc.message}", recipient) from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        if exc.code < 500:
            raise _by_code(exc.code, f"login failed: {exc.message}", recipient) from exc
        raise ConfigError(
            f"the SMTP server refused the login ({exc.code} {exc.message}); "
            "check smtp.username and STATEMENT_FEEDS_SMTP_PASSWORD",
            key="smtp.username",
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:  # greeting, MAIL, DATA, ...
        raise _by_code(exc.code, exc.message, recipient) from exc
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
        raise TemporaryDeliveryError(f"connection lost: {exc}", recipient=recipient) from exc
    except aiosmtplib.SMTPConnectError as exc:
        # aiosmtplib wraps every OSError of the connect, TLS handshake included
        # (security = "tls"), in SMTPConnectError: look at what it wraps.
        tls = _tls_failure(exc)
        if tls is not None:
            raise tls from exc
        raise TemporaryDeliveryError(f"cannot connect: {exc}", recipient=recipient) from exc
    except (TimeoutError, OSError) as exc:  # includes ssl.SSLError, ConnectionRefusedError
        tls = _tls_failure(exc)  # e.g. the handshake after STARTTLS
        if tls is not None:
            raise tls from exc
        raise TemporaryDeliveryError(f"network error: {exc}", recipient=recipient) from exc
    except aiosmtplib.SMTPException as exc:  # e.g. AUTH not offered: nothing a retry fixes
        raise ConfigError(f"SMTP: {exc}", key="smtp") from exc


def _by_code(code: int, message: str, recipient: str) -> DeliveryError:
    text = f"{code} {message}".strip()
    if 500 <= code < 600:
        return PermanentDeliveryError(text, recipient=recipient, code=code)
    # 4xx, and anything unexpected: the message's fate is open, so try again later.
    return TemporaryDeliveryError(text, recipient=recipient, code=code)


# RFC 3463 enhanced status codes: class.subject.detail, at the start of the reply text.
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")

# Enhanced codes that say the recipient's address itself is bad: a hard bounce.
# 5.1.1 bad mailbox, 5.1.2 bad system, 5.1.3 bad address syntax, 5.1.6 mailbox moved,
# 5.1.10 null MX, 5.2.1 mailbox disabled. (5.1.7 and 5.1.8 are about the *sender*'s
# address, and Postfix rejects a bad sender with 5.1.0 at RCPT: every recipient would
# get those, so they must not bounce anyone.)
_BOUNCE_ENHANCED = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"})
# Without an enhanced code: 550 mailbox unavailable, 551 user not local, 553 mailbox
# name not allowed. 552 (storage), 554 (transaction failed, often policy) do not bounce.
_BOUNCE_CODES = frozenset({550, 551, 553})


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 enhanced status code a reply text starts with ("5.7.1"), or None."""
    match = _ENHANCED.match(text.lstrip())
    if match is None:
        return None
    return ".".join(str(int(part)) for part in match.groups())


def reply_status(error: DeliveryError) -> tuple[int, str | None] | None:
    """(reply code, enhanced code or None) of an error made from an SMTP reply, else None.

    Every error built here from a reply reads "... <code> <reply text>", so the
    enhanced code is found right after the reply code.
    """
    if error.code is None:
        return None
    text = str(error)
    marker = f"{error.code} "
    at = text.find(marker)
    return error.code, (enhanced_status(text[at + len(marker) :]) if at >= 0 else None)


def _refused(code: int, message: str, recipient: str) -> PermanentDeliveryError:
    """A 5xx reply to RCPT: a bounce only when it says the address is bad.

    Relay and policy refusals ("550 5.7.1 Relaying denied", "554 5.7.1 ... not
    permitted": usually our own SMTP settings) hit every recipient alike; marking
    them bounced would block the whole list, so they are permanent failures, which
    ``retry-failed`` can queue again once the settings are fixed.
    """
    text = f"{code} {message}".strip()
    enhanced = enhanced_status(message)
    if enhanced is not None and enhanced.startswith("5."):
        bounce = enhanced in _BOUNCE_ENHANCED
    else:  # no (usable) enhanced code: judge by the basic reply code
        bounce = code in _BOUNCE_CODES
    if bounce:
        return RecipientRefusedError(f"recipient refused: {text}", recipient=recipient, code=code)
    return PermanentDeliveryError(f"recipient not accepted: {text}", recipient=recipient, code=code)


def _tls_failure(exc: BaseException) -> ConfigError | None:
    """A ConfigError when ``exc`` is, or wraps, a failed TLS handshake; else None.

    An untrusted certificate, or a server not speaking TLS where TLS was asked for,
    will not change by retrying: the run must stop rather than defer everyone for
    days. A connection cut during the handshake (EOF) is left to the retry logic.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return ConfigError(
                f"the SMTP server's certificate is not trusted: {current.verify_message}",
                key="smtp.host",
            )
        if isinstance(current, ssl.SSLError) and not isinstance(
            current, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            return ConfigError(
                f"the TLS handshake with the SMTP server failed ({current.reason or current}); "
                "check smtp.security and smtp.port",
                key="smtp.security",
            )
        current = current.__cause__ or current.__context__
    return None
