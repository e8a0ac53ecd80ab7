"""Handing messages over: SMTP (aiosmtplib, pooled connections) or a Maildir.

Everything the sending loop sees of a failure goes through :func:`map_smtp_errors`,
the one place where aiosmtplib's exceptions, socket errors and timeouts become
``errors.TemporaryDeliveryError`` (retry later), ``PermanentDeliveryError``
(record, never retry), ``RecipientRefusedError`` (a bounce) or ``ConfigError``
(this run cannot send anything: TLS required but unavailable, certificate not
trusted, login refused). Passwords are never put in messages or logs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol

import aiosmtplib
import aiosmtplib.email
import aiosmtplib.protocol
from aiosmtplib import SMTPStatus

from ..config import SmtpConfig
from ..errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    RecipientRefusedError,
    TemporaryDeliveryError,
)

__all__ = [
    "MaildirMessenger",
    "Messenger",
    "SmtpMessenger",
    "enhanced_status",
    "make_messenger",
    "map_smtp_errors",
    "reply_status",
]

log = logging.getLogger(__name__)

# RFC 5321 4.5.3.2.6: a client should wait at least 10 minutes for the reply to the
# final "." of DATA: the server may be scanning or queueing. Giving up earlier turns a
# message that was accepted into an "unknown" one, re-sent later: a duplicate.
DATA_TIMEOUT = 600.0


class Messenger(Protocol):
    """Hands one message to its recipient's mail system; raises ``DeliveryError``."""

    async def send(self, sender: str, recipient: str, message: bytes) -> None: ...

    async def close(self) -> None: ...


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


class _Slot:
    """One pooled connection; ``client`` is None until first use or after a drop."""

    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class SmtpMessenger:
    """``concurrency`` connections, each reused for many messages, reconnected on drop."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        data_timeout: float = DATA_TIMEOUT,
        local_hostname: str | None = None,
    ) -> None:
        if not config.host:
            raise ValueError("SmtpMessenger needs smtp.host; use MaildirMessenger without one")
        self._config = config
        self._tls_context = tls_context  # None: the system's trusted CAs, hostname checked
        self._data_timeout = data_timeout
        self._local_hostname = local_hostname
        self._slots = [_Slot() for _ in range(max(1, config.concurrency))]
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        for slot in self._slots:
            self._idle.put_nowait(slot)
        self._fatal: ConfigError | None = None

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        if self._fatal is not None:  # a configuration error holds for the whole run
            raise self._fatal
        slot = await self._idle.get()
        try:
            with map_smtp_errors(recipient):
                await self._transaction(slot, sender, recipient, message)
        except ConfigError as exc:
            self._fatal = exc
            raise
        finally:
            self._idle.put_nowait(slot)

    async def _transaction(self, slot: _Slot, sender: str, recipient: str, message: bytes) -> None:
        reused = slot.connected
        client = slot.client if reused and slot.client else await self._connect(slot)
        try:
            try:
                await _mail(client, sender)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed the idle connection. Nothing of this message went
                # out, so one fresh connection is safe (and no retry is burnt on it).
                client = await self._connect(slot)
                await _mail(client, sender)
            await _rcpt(client, recipient)
            await _data(client, message, self._data_timeout)
        except aiosmtplib.SMTPResponseException:
            await self._reset(slot)  # the connection is fine: clear the envelope, keep it
            raise
        except BaseException:
            slot.drop()  # unknown protocol state (timeout, drop, cancellation): start afresh
            raise

    async def _connect(self, slot: _Slot) -> aiosmtplib.SMTP:
        slot.drop()
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.security == "tls",
            start_tls=False,  # done explicitly below: never opportunistic, never skipped
            validate_certs=True,
            tls_context=self._tls_context,
            timeout=config.timeout,
            local_hostname=self._local_hostname,
        )
        slot.client = client
        try:
            await client.connect()
            if config.security == "starttls":
                await self._starttls(client)
            if config.username:
                await client.login(config.username, config.password)
            if client.is_ehlo_or_helo_needed:  # the raw commands below do not ask for it
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except BaseException:
            slot.drop()
            raise
        return client

    async def _starttls(self, client: aiosmtplib.SMTP) -> None:
        await client.ehlo()
        if not client.supports_extension("starttls"):
            raise ConfigError(
                f"{self._config.host}:{self._config.port} does not offer STARTTLS, and "
                'smtp.security = "starttls" forbids sending in plain text; fix the server, '
                'or use security = "tls" (port 465) or, only on a trusted network, "none"',
                key="smtp.security",
            )
        await client.starttls()
        await client.ehlo()  # RFC 3207: capabilities must be asked again after TLS

    async def _reset(self, slot: _Slot) -> None:
        if slot.client is None:
            return
        try:
            await slot.client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            slot.drop()

    async def close(self) -> None:
        for slot in self._slots:
            if slot.connected and slot.client is not None:
                with suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                    await slot.client.quit()
            slot.drop()


# The fast path: aiosmtplib's ``mail``/``rcpt``/``data`` parse every address with the
# ``email`` package and run two regular expressions over every message (line endings,
# dot-stuffing): about a third of the CPU time of an edition. Our messages already have
# CRLF line endings and plain addresses, so the same commands are sent through
# ``SMTP.execute_command`` and the protocol directly, falling back to aiosmtplib's own
# quoting and normalisation for anything unusual. Errors are aiosmtplib's exceptions,
# raised for the same replies, so ``map_smtp_errors`` sees no difference.
_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\],;:\\\"@]+@[^\s<>()\[\],;:\\\"@]+")


def _quoted(address: str) -> bytes:
    if address.isascii() and _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return aiosmtplib.email.quote_address(address).encode("ascii")


async def _mail(client: aiosmtplib.SMTP, sender: str) -> None:
    response = await client.execute_command(b"MAIL", b"FROM:" + _quoted(sender))
    if response.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)


async def _rcpt(client: aiosmtplib.SMTP, recipient: str) -> None:
    response = await client.execute_command(b"RCPT", b"TO:" + _quoted(recipient))
    if response.code not in {SMTPStatus.completed, SMTPStatus.will_forward}:
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)


def data_payload(message: bytes) -> bytes:
    """The message as sent after DATA: CRLF line ends, dot-stuffed, ending in CRLF . CRLF."""
    pairs = message.count(b"\r\n")  # three C-speed scans instead of a regex substitution
    if message.count(b"\r") != pairs or message.count(b"\n") != pairs:
        message = aiosmtplib.protocol.normalize_message_line_endings(message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


async def _data(client: aiosmtplib.SMTP, message: bytes, timeout: float) -> None:
    response = await client.execute_command(b"DATA")
    if response.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        protocol.write(data_payload(message))
        response = await protocol.read_response(timeout=timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()
        raise
    if response.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(response.code, response.message)


class MaildirMessenger:
    """Writes each message into the Maildir at ``path`` (tmp/, fsync, rename into new/)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        for folder in ("tmp", "new", "cur"):
            (path / folder).mkdir(parents=True, exist_ok=True)

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        try:
            await asyncio.to_thread(self._write, message)
        except OSError as exc:  # disk full, permissions: may clear up, so retry later
            raise TemporaryDeliveryError(
                f"cannot write to {self.path}: {exc}", recipient=recipient
            ) from exc

    def _write(self, message: bytes) -> None:
        # Maildir files use the local line ending; the unique name follows the
        # Maildir convention (time.pid_counter.host) so mail clients accept it.
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(self._counter)}.{self._host}"
        temporary = self.path / "tmp" / name
        with open(temporary, "wb") as handle:
            handle.write(message.replace(b"\r\n", b"\n"))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, self.path / "new" / name)
        fd = os.open(self.path / "new", os.O_RDONLY)
        try:
            os.fsync(fd)  # make the rename itself durable
        finally:
            os.close(fd)

    async def close(self) -> None:
        return None


def make_messenger(config: SmtpConfig, outbox: Path) -> Messenger:
    """SMTP when ``smtp.host`` is set, else the Maildir at ``paths.outbox``."""
    if config.host:
        return SmtpMessenger(config)
    log.info("smtp.host is empty: writing messages to the Maildir %s", outbox)
    return MaildirMessenger(outbox)
