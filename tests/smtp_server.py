"""A real SMTP server for tests: aiosmtpd on loopback, recording every message.

Plain module (no pytest import) so any test can use it::

    server = RecordingServer()
    server.start()
    ...  # send to server.host:server.port
    server.stop()

Faults are switched per test by setting attributes (the handler reads them on each
command, from the server's own thread):

* ``rcpt_replies[address] = "451 4.3.0 try later"`` — reply to RCPT TO for that address;
* ``handler.after_data = callback`` — called with the count of messages received, before
  the reply to each DATA (e.g. to fill the sender's disk mid-edition);
* ``greeting_reply = "421 4.3.2 busy"`` — say this instead of 220 and hang up;
* ``drop_after_data = n`` — for the next n messages: keep the message, then close the
  connection before replying (the client cannot know whether it was accepted);
* ``data_delay = seconds`` — wait before the 250 reply to DATA;
* ``data_reply = "554 5.7.1 rejected"`` — reply to DATA with this instead of 250;
* ``mail_reply = "451 4.3.0 later"`` — reply to MAIL FROM with this instead of 250;
* ``stop()`` then ``start()`` — the server goes down and comes back on the same port.

``RecordingServer(pipelining=True)`` offers PIPELINING (RFC 2920) in its EHLO reply;
``pipelined`` then lists, per MAIL, whether RCPT and DATA had arrived with it (written
by the client at once, not each after the previous reply).

``tls_context`` makes the server offer STARTTLS (``require_starttls`` to insist on it).
"""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Received", "RecordingServer", "ehlo_reply", "free_port"]


def ehlo_reply(responses: list[str], *, pipelining: bool) -> list[str]:
    """aiosmtpd's EHLO lines, with PIPELINING (RFC 2920) offered when asked: it does not
    offer it itself, though it reads pipelined commands in order."""
    if pipelining:  # before the last line ("250 HELP")
        return [*responses[:-1], "250-PIPELINING", responses[-1]]
    return list(responses)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    dropped: bool  # the connection was closed before the reply: the client saw no 250

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class _Handler:
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    drop_after_data: int = 0
    data_delay: float = 0.0
    data_reply: str | None = None
    mail_reply: str | None = None
    pipelining: bool = False
    pipelined: list[bool] = field(default_factory=list)
    # Called (in the server's thread) with the number of messages received so far,
    # before the reply: e.g. to fill the sender's disk at the 5th message.
    after_data: Callable[[int], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.commands.append(f"MAIL {address}")
        # What the client wrote after MAIL and the server has not read yet (aiosmtpd's
        # stream reader): a pipelined group's RCPT and DATA.
        waiting = bytes(getattr(server._reader, "_buffer", b""))
        self.pipelined.append(b"RCPT TO:" in waiting and b"DATA\r\n" in waiting)
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> list[str]:
        session.host_name = hostname
        return ehlo_reply(responses, pipelining=self.pipelining)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.commands.append(f"RCPT {address}")
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        with self.lock:
            dropping = self.drop_after_data > 0
            if dropping:
                self.drop_after_data -= 1
        received = Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), data, dropping)
        if self.data_reply is None or dropping:
            with self.lock:
                self.messages.append(received)
        if self.after_data is not None:
            self.after_data(len(self.messages))
        if dropping:
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # gone before the reply: the fate is unknown to the client
            return "250 OK"
        if self.data_delay:
            await asyncio.sleep(self.data_delay)  # the slow server the test is about
        return self.data_reply or "250 2.0.0 OK queued"


class _FaultySMTP(SMTP):
    """aiosmtpd's server, with a configurable greeting fault."""

    def __init__(self, handler: _Handler, owner: RecordingServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    async def _handle_client(self) -> None:
        with self._owner._lock:
            self._owner.connections += 1
        reply = self._owner.greeting_reply
        if reply is not None:
            await self.push(reply)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def __init__(self, owner: RecordingServer, **kwargs: Any) -> None:
        self._owner = owner
        super().__init__(owner.handler, **kwargs)

    def factory(self) -> SMTP:
        return _FaultySMTP(self._owner.handler, self._owner, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # The stock trigger speaks SMTP to the server; with faults on it could
        # count as a session. A bare connect is enough to run factory().
        with socket.create_connection((self.hostname, self.port), timeout=1.0) as sock:
            sock.recv(1024)


class RecordingServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        pipelining: bool = False,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.handler = _Handler(pipelining=pipelining)
        self.tls_context = tls_context
        self.require_starttls = require_starttls
        self.greeting_reply: str | None = None
        self.connections = 0
        self._lock = threading.Lock()
        self._controller: _Controller | None = None

    # -- faults (see module docstring) -------------------------------------------
    @property
    def rcpt_replies(self) -> dict[str, str]:
        return self.handler.rcpt_replies

    @property
    def drop_after_data(self) -> int:
        return self.handler.drop_after_data

    @drop_after_data.setter
    def drop_after_data(self, count: int) -> None:
        self.handler.drop_after_data = count

    @property
    def data_delay(self) -> float:
        return self.handler.data_delay

    @data_delay.setter
    def data_delay(self, seconds: float) -> None:
        self.handler.data_delay = seconds

    @property
    def data_reply(self) -> str | None:
        return self.handler.data_reply

    @data_reply.setter
    def data_reply(self, reply: str | None) -> None:
        self.handler.data_reply = reply

    @property
    def mail_reply(self) -> str | None:
        return self.handler.mail_reply

    @mail_reply.setter
    def mail_reply(self, reply: str | None) -> None:
        self.handler.mail_reply = reply

    # -- what arrived ---------------------------------------------------------------
    @property
    def pipelined(self) -> list[bool]:
        return list(self.handler.pipelined)

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def commands(self) -> list[str]:
        return list(self.handler.commands)

    def messages_to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.recipients]

    # -- life cycle -----------------------------------------------------------------
    def start(self) -> None:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port, "ready_timeout": 5.0}
        if self.tls_context is not None:
            kwargs["tls_context"] = self.tls_context
            kwargs["require_starttls"] = self.require_starttls
        self._controller = _Controller(self, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> RecordingServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ImplicitTlsController(_Controller):
    def _trigger_server(self) -> None:
        # As _Controller's, but the handshake must happen before the server says anything.
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((self.hostname, self.port), timeout=1.0) as raw,
            client.wrap_socket(raw) as sock,
        ):
            sock.recv(1024)


class ImplicitTlsServer(RecordingServer):
    """The same server behind implicit TLS (smtps, port 465): TLS from the first byte.

    ``tls_context`` is the server's context (its certificate); there is no STARTTLS.
    """

    def start(self) -> None:
        assert self.tls_context is not None, "implicit TLS needs a server tls_context"
        self._controller = _ImplicitTlsController(
            self,
            hostname=self.host,
            port=self.port,
            ready_timeout=5.0,
            ssl_context=self.tls_context,
        )
        self._controller.start()
