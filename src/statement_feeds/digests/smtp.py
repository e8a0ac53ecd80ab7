"""Handing messages over by SMTP: :class:`SmtpMessenger`, pooled aiosmtplib connections.

The MAIL/RCPT/DATA commands go through the fast path in :mod:`.smtp_internals`;
whatever fails is translated by :func:`.smtp_errors.map_smtp_errors`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from contextlib import suppress

import aiosmtplib

from ..config import SmtpConfig
from ..errors import ConfigError
from .record import cleared
from .smtp_errors import map_smtp_errors
from .smtp_internals import (
    content,
    data,
    greet_if_needed,
    mail,
    offers_pipelining,
    open_data,
    rcpt,
)

__all__ = ["DATA_TIMEOUT", "SmtpMessenger"]

# RFC 5321 4.5.3.2.6: a client should wait at least 10 minutes for the reply to the
# final "." of DATA: the server may be scanning or queueing. Giving up earlier turns a
# message that was accepted into an "unknown" one, re-sent later: a duplicate.
DATA_TIMEOUT = 600.0


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

    async def send(
        self, sender: str, recipient: str, message: bytes, ready: Awaitable[bool] | None = None
    ) -> bool:
        if self._fatal is not None:  # a configuration error holds for the whole run
            raise self._fatal
        slot = await self._idle.get()
        try:
            with map_smtp_errors(recipient):
                return await self._transaction(slot, sender, recipient, message, ready)
        except ConfigError as exc:
            self._fatal = exc
            raise
        finally:
            self._idle.put_nowait(slot)

    async def _transaction(
        self,
        slot: _Slot,
        sender: str,
        recipient: str,
        message: bytes,
        ready: Awaitable[bool] | None,
    ) -> bool:
        reused = slot.connected
        client = slot.client if reused and slot.client else await self._connect(slot)
        try:
            try:
                pipelined = await self._open(client, sender, recipient)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed the idle connection. Nothing of this message went
                # out, so one fresh connection is safe (and no retry is burnt on it).
                # It is asked afresh whether to pipeline: the new server may not offer it.
                client = await self._connect(slot)
                pipelined = await self._open(client, sender, recipient)
            if not pipelined:
                await rcpt(client, recipient)
            if not await cleared(ready):  # the ledger said no: leave nothing behind
                if pipelined:  # DATA is open: only closing the connection sends nothing
                    slot.drop()
                else:
                    await self._reset(slot)
                return False
            if pipelined:
                await content(client, message, self._data_timeout)
            else:
                await data(client, message, self._data_timeout)
            return True
        except aiosmtplib.SMTPResponseException:
            await self._reset(slot)  # the connection is fine: clear the envelope, keep it
            raise
        except BaseException:
            slot.drop()  # unknown protocol state (timeout, drop, cancellation): start afresh
            raise

    async def _open(self, client: aiosmtplib.SMTP, sender: str, recipient: str) -> bool:
        """MAIL; with PIPELINING (RFC 2920), RCPT and DATA too, in one round trip: with
        the message after the commit, two round trips a message instead of four (on a
        relay 20 ms away, twice the messages per connection). True when DATA is open."""
        if offers_pipelining(client):
            await open_data(client, sender, recipient, self._config.timeout)
            return True
        await mail(client, sender)
        return False

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
            await greet_if_needed(client)
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
