"""ReplyReader (PIPELINING's replies), and a pipelining client against a server that
misbehaves in ways aiosmtpd never does. The usual faults run against a pipelining
aiosmtpd in tests/digests/test_mailer.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiosmtplib
import pytest

from smtp_server import free_port
from statement_feeds.config import SmtpConfig
from statement_feeds.digests.mailer import SmtpMessenger
from statement_feeds.digests.smtp_replies import INVALID, MAX_REPLY, ReplyReader
from statement_feeds.errors import RecipientRefusedError, TemporaryDeliveryError


def read(feed: Callable[[ReplyReader], None], count: int, timeout: float = 1.0) -> list[object]:
    async def run() -> list[object]:
        reader = ReplyReader()
        feed(reader)
        out: list[object] = []
        for _ in range(count):
            try:
                reply = await reader.next(timeout)
                out.append((reply.code, reply.message))
            except aiosmtplib.SMTPException as exc:
                out.append(exc)
        return out

    return asyncio.run(run())


def test_replies_split_anyhow_come_out_whole_and_in_order() -> None:
    def feed(reader: ReplyReader) -> None:
        for chunk in (b"250-first\r\n25", b"0 second\r\n", b"250 2.1.5 OK\r\n354 go ahead\r\n"):
            reader.data_received(chunk)

    assert read(feed, 3) == [(250, "first\nsecond"), (250, "2.1.5 OK"), (354, "go ahead")]


def test_a_garbled_reply_fails_the_read_as_aiosmtplib_would() -> None:
    (error,) = read(lambda r: r.data_received(b"hello there\r\n"), 1)
    assert isinstance(error, aiosmtplib.SMTPResponseException) and error.code == INVALID
    (error,) = read(lambda r: r.data_received(b"2" * (MAX_REPLY + 1)), 1)
    assert isinstance(error, aiosmtplib.SMTPResponseException) and error.code == INVALID


def test_replies_before_a_hang_up_are_still_read_then_it_is_a_disconnect() -> None:
    def feed(reader: ReplyReader) -> None:
        reader.data_received(b"421 4.3.2 closing\r\n")
        assert reader.eof_received() is False  # the transport closes
        reader.connection_lost(None)

    first, second = read(feed, 2)
    assert first == (421, "4.3.2 closing")
    assert isinstance(second, aiosmtplib.SMTPServerDisconnected)


def test_no_reply_in_time_is_a_read_timeout() -> None:
    (error,) = read(lambda r: r.data_received(b"250 par"), 1, timeout=0.05)
    assert isinstance(error, aiosmtplib.SMTPReadTimeoutError)


def test_replies_nobody_asked_for_are_noticed() -> None:
    reader = ReplyReader()
    assert not reader.leftover
    reader.data_received(b"250 OK\r\n")
    assert reader.leftover


# -- a scripted server ------------------------------------------------------------------


class Scripted:
    """Replies from a script, keyed by command (b"": hang up instead); records every
    byte it received."""

    def __init__(self, replies: dict[bytes, bytes]) -> None:
        self.replies = replies
        self.received = bytearray()
        self.connections = 0
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            while line := await reader.readline():
                self.received += line
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper()
                reply = self.replies.get(verb, b"250 OK\r\n")
                if not reply:  # scripted to hang up here
                    break
                writer.write(reply)
                await writer.drain()
        finally:
            writer.close()


async def send_through(server: Scripted, ready: Awaitable[bool] | None = None) -> object:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", server.port)
    config = SmtpConfig(
        host="127.0.0.1", port=server.port, security="none", concurrency=1, timeout=2.0
    )
    messenger = SmtpMessenger(config, local_hostname="client.test")
    try:
        return await messenger.send(
            "s@example.org", "r@example.org", b"Subject: x\r\n\r\nhi\r\n", ready
        )
    except Exception as exc:
        return exc
    finally:
        await messenger.close()
        listener.close()
        await asyncio.sleep(0.05)  # the server's handler sees the hang-up


EHLO = b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


def test_data_opened_for_a_refused_recipient_is_aborted_by_hanging_up() -> None:
    # RFC 2920 says the server must refuse DATA then; one that opens it anyway must
    # not get the message (nor an empty one): the client hangs up instead.
    server = Scripted(
        {b"EHLO": EHLO, b"RCPT": b"550 5.1.1 no such user\r\n", b"DATA": b"354 go\r\n"}
    )
    result = asyncio.run(send_through(server))
    assert isinstance(result, RecipientRefusedError) and result.code == 550
    assert b"hi\r\n" not in server.received and b"\r\n.\r\n" not in server.received


def test_a_hand_over_refused_with_data_open_sends_nothing() -> None:
    server = Scripted({b"EHLO": EHLO, b"DATA": b"354 go\r\n"})

    async def refused() -> bool:
        return False

    result = asyncio.run(send_through(server, refused()))
    assert result is False
    assert b"DATA\r\n" in server.received  # pipelined with MAIL and RCPT
    assert b"hi\r\n" not in server.received and b"\r\n.\r\n" not in server.received


def test_a_server_replying_out_of_turn_loses_the_connection_not_the_message() -> None:
    # Two replies to DATA: the next replies would be paired with the wrong commands.
    server = Scripted({b"EHLO": EHLO, b"DATA": b"354 go\r\n250 extra\r\n"})
    result = asyncio.run(send_through(server))
    assert isinstance(result, TemporaryDeliveryError)  # tried again later
    assert b"hi\r\n" not in server.received


@pytest.mark.parametrize("mail_reply", [b"421 4.3.2 shutting down\r\n", b"451 4.3.0 later\r\n"])
def test_a_refused_mail_is_reported_even_if_the_server_then_hangs_up(mail_reply: bytes) -> None:
    server = Scripted({b"EHLO": EHLO, b"MAIL": mail_reply})
    if mail_reply.startswith(b"421"):
        server.replies[b"RCPT"] = b""  # 421: it closes the connection (RFC 5321 3.8)
    result = asyncio.run(send_through(server))
    assert isinstance(result, TemporaryDeliveryError)
    assert result.code == int(mail_reply[:3])  # its reply, not "connection lost"
