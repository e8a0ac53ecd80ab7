"""Attacks on SMTP PIPELINING (smtp_internals.open_data, smtp_replies.ReplyReader):
servers that misbehave at each point of the MAIL/RCPT/DATA group, over real sockets.

Each scripted connection replies from its own script (keyed by command; b"" hangs up,
None never answers), so a test can make the first connection differ from the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiosmtplib
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtp_server import free_port
from statement_feeds.config import SmtpConfig
from statement_feeds.digests.mailer import SmtpMessenger
from statement_feeds.digests.smtp_replies import ReplyReader
from statement_feeds.errors import (
    PermanentDeliveryError,
    RecipientRefusedError,
)

EHLO_PIPELINING = b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-scripted\r\n250 8BITMIME\r\n"
MESSAGE = b"Subject: x\r\n\r\nhi\r\n"
Reply = bytes | None  # b"": hang up; None: never answer


class PerConnection:
    """A server whose n-th connection follows ``scripts[n]`` (the last one thereafter).

    Records every byte received per connection, and for each MAIL whether more bytes
    (RCPT, DATA) were already waiting: the client pipelined without waiting for its reply.
    """

    def __init__(self, scripts: Sequence[dict[bytes, Reply | list[Reply]]]) -> None:
        self.scripts = scripts
        self.received: list[bytearray] = []
        self.pipelined: list[bool] = []
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.received)
        scripted = self.scripts[min(index, len(self.scripts) - 1)]
        script = {verb: list(r) if isinstance(r, list) else r for verb, r in scripted.items()}
        received = bytearray()
        self.received.append(received)
        writer.write(b"220 scripted ESMTP\r\n")
        in_data = False
        try:
            while line := await reader.readline():
                received += line
                if in_data:
                    in_data = line != b".\r\n"
                    if not in_data:
                        writer.write(b"250 queued\r\n")
                    continue
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper()
                if verb == b"MAIL":
                    await asyncio.sleep(0.05)  # a pipelining client's RCPT arrives meanwhile
                    self.pipelined.append(bool(getattr(reader, "_buffer", b"")))
                reply = script.get(verb, b"354 go\r\n" if verb == b"DATA" else b"250 OK\r\n")
                if isinstance(reply, list):  # one reply per occurrence of the command
                    reply = reply.pop(0) if len(reply) > 1 else reply[0]
                if reply is None:  # scripted never to answer
                    await asyncio.sleep(3600)
                if not reply:  # scripted to hang up here
                    break
                writer.write(reply)
                await writer.drain()
                in_data = verb == b"DATA" and reply.startswith(b"354")
        finally:
            writer.close()


async def send_all(server: PerConnection, count: int = 1, *, timeout: float = 2.0) -> list[object]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", server.port)
    config = SmtpConfig(
        host="127.0.0.1", port=server.port, security="none", concurrency=1, timeout=timeout
    )
    messenger = SmtpMessenger(config, local_hostname="client.test")
    results: list[object] = []
    try:
        for _ in range(count):
            try:
                results.append(await messenger.send("s@example.org", "r@example.org", MESSAGE))
            except Exception as exc:
                results.append(exc)
        return results
    finally:
        await messenger.close()
        listener.close()
        await asyncio.sleep(0.05)


# -- a refusal must not be lost to what the server does after it -----------------------


def test_a_bounced_recipient_stays_a_bounce_when_the_server_hangs_up_at_data() -> None:
    # Unpipelined, RCPT's 550 5.1.1 is a bounce whatever comes next; pipelined, the
    # server has DATA too and may hang up on it ("no valid recipients").
    server = PerConnection(
        [{b"EHLO": EHLO_PIPELINING, b"RCPT": b"550 5.1.1 no such user\r\n", b"DATA": b""}]
    )
    (result,) = asyncio.run(send_all(server))
    assert isinstance(result, RecipientRefusedError) and result.code == 550


def test_a_bounced_recipient_stays_a_bounce_when_data_is_never_answered() -> None:
    server = PerConnection(
        [{b"EHLO": EHLO_PIPELINING, b"RCPT": b"550 5.1.1 no such user\r\n", b"DATA": None}]
    )
    (result,) = asyncio.run(send_all(server, timeout=0.3))
    assert isinstance(result, RecipientRefusedError) and result.code == 550


def test_a_refused_sender_stays_permanent_when_the_next_reply_is_garbled() -> None:
    server = PerConnection(
        [{b"EHLO": EHLO_PIPELINING, b"MAIL": b"550 5.7.1 not you\r\n", b"RCPT": b"garbage\r\n"}]
    )
    (result,) = asyncio.run(send_all(server))
    assert isinstance(result, PermanentDeliveryError) and result.code == 550


# -- the reused connection's reconnect ------------------------------------------------------


def test_a_reconnect_does_not_pipeline_to_a_server_that_no_longer_offers_it() -> None:
    # The first connection offers PIPELINING, and hangs up at the second message's MAIL
    # (an idle connection closed as the client wrote); the server that answers the
    # reconnect does not offer it: RFC 2920 forbids pipelining to it (Postfix refuses
    # it: "554 5.5.0 improper command pipelining", a permanent failure).
    server = PerConnection(
        [{b"EHLO": EHLO_PIPELINING, b"MAIL": [b"250 OK\r\n", b""]}, {b"EHLO": EHLO_PLAIN}]
    )
    results = asyncio.run(send_all(server, count=2))
    assert results == [True, True]
    assert len(server.received) == 2  # reconnected once, no retry burnt
    assert server.pipelined[-1] is False  # MAIL's reply awaited before RCPT


# -- ReplyReader against aiosmtplib's own parsing ------------------------------------------


async def _aiosmtplib_reads(reply: bytes) -> object:
    """What aiosmtplib makes of ``reply`` sent as the answer to a NOOP, over a socket."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ok\r\n")
        while (line := await reader.readline()) and line.upper().startswith((b"EHLO", b"HELO")):
            writer.write(b"250 ok\r\n")  # aiosmtplib's connect greets first
        writer.write(reply)
        await reader.read()  # until the client hangs up
        writer.close()

    port = free_port()
    listener = await asyncio.start_server(handle, "127.0.0.1", port)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=2.0)
    try:
        await client.connect()
        response = await client.execute_command(b"NOOP")
        return (response.code, response.message)
    except aiosmtplib.SMTPResponseException as exc:
        return ("error", exc.code)
    finally:
        client.close()
        listener.close()


async def _reply_reader_reads(reply: bytes) -> object:
    reader = ReplyReader()
    reader.data_received(reply)
    try:
        response = await reader.next(1.0)
        return (response.code, response.message)
    except aiosmtplib.SMTPResponseException as exc:
        return ("error", exc.code)


_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(str.encode)


@st.composite
def _replies(draw: st.DrawFn) -> bytes:
    """One whole reply: continuation lines ("ccc-text"), then a last line."""
    first = draw(st.sampled_from([b"250", b"550", b"354"]))
    lines = [
        draw(st.sampled_from([first, first, first, b"550", b"25x"])) + b"-" + draw(_TEXT)
        for _ in range(draw(st.integers(0, 3)))
    ]
    last_code = draw(st.sampled_from([first, first, b"550", b"2 0"])) if lines else first
    lines.append(last_code + draw(st.sampled_from([b" ", b""])) + draw(_TEXT).replace(b"-", b""))
    return b"".join(line + b"\r\n" for line in lines)


@settings(max_examples=60, deadline=None)
@example(b"250-first\r\n550 second\r\n")
@example(b"250-first\r\nxyz second\r\n")
@example(b"250-" + b"x" * 9000 + b"\r\n250 ok\r\n")
@given(_replies())
def test_reply_reader_reads_a_reply_as_aiosmtplib_does(reply: bytes) -> None:
    assert asyncio.run(_reply_reader_reads(reply)) == asyncio.run(_aiosmtplib_reads(reply))
