"""SmtpMessenger and MaildirMessenger against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import email
import ssl
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from smtp_server import ImplicitTlsServer, RecordingServer
from statement_feeds.config import SmtpConfig
from statement_feeds.digests.mailer import MaildirMessenger, SmtpMessenger
from statement_feeds.errors import (
    ConfigError,
    PermanentDeliveryError,
    RecipientRefusedError,
    TemporaryDeliveryError,
)


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[RecordingServer]:
    """Every test here runs against a server without PIPELINING (MAIL, RCPT, DATA each
    after the previous reply) and with it (the three in one round trip)."""
    with RecordingServer(pipelining=request.param) as server:
        yield server


MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n.dot line\r\n"


def messenger(server: RecordingServer, **options: object) -> SmtpMessenger:
    settings: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "concurrency": 2,
        "timeout": 5.0,
    }
    settings.update(options)
    data_timeout = float(settings.pop("data_timeout", 30.0))  # type: ignore[arg-type]
    return SmtpMessenger(
        SmtpConfig(**settings),  # type: ignore[arg-type]
        local_hostname="client.test",
        data_timeout=data_timeout,
    )


async def send_all(sender: SmtpMessenger, recipients: list[str]) -> list[Exception | None]:
    async def one(recipient: str) -> Exception | None:
        try:
            await sender.send("bounces@example.org", recipient, MESSAGE)
        except Exception as exc:
            return exc
        return None

    try:
        return list(await asyncio.gather(*(one(r) for r in recipients)))
    finally:
        await sender.close()


def test_messages_arrive_intact_over_reused_connections(smtp_server: RecordingServer) -> None:
    before = smtp_server.connections
    recipients = [f"user{i}@example.org" for i in range(20)]
    results = asyncio.run(send_all(messenger(smtp_server), recipients))
    assert results == [None] * 20
    got = smtp_server.messages
    assert sorted(m.recipients[0] for m in got) == sorted(recipients)
    assert all(m.recipients == (m.recipients[0],) for m in got)  # one recipient each
    assert all(m.sender == "bounces@example.org" for m in got)
    assert got[0].data == MESSAGE  # dot-stuffing undone by the server: bytes round-trip
    assert smtp_server.connections - before == 2  # smtp.concurrency, each reused
    # Offered PIPELINING, every MAIL came with its RCPT and DATA; else none did.
    assert smtp_server.pipelined == [smtp_server.handler.pipelining] * 20


def test_451_on_rcpt_is_temporary(smtp_server: RecordingServer) -> None:
    smtp_server.rcpt_replies["later@example.org"] = "451 4.3.0 try again later"
    results = asyncio.run(send_all(messenger(smtp_server), ["later@example.org", "ok@example.org"]))
    error = results[0]
    assert isinstance(error, TemporaryDeliveryError)
    assert (error.code, error.recipient) == (451, "later@example.org")
    assert results[1] is None  # the connection was reset and kept working
    assert [m.recipients for m in smtp_server.messages] == [("ok@example.org",)]


def test_550_on_rcpt_is_a_bounce(smtp_server: RecordingServer) -> None:
    smtp_server.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    [error] = asyncio.run(send_all(messenger(smtp_server), ["gone@example.org"]))
    assert isinstance(error, RecipientRefusedError)
    assert (error.code, error.recipient) == (550, "gone@example.org")


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown",
        "550 5.1.2 bad destination system",
        "553 5.1.3 bad address syntax",
        "550 5.1.6 mailbox has moved",
        "556 5.1.10 domain does not accept mail (null MX)",
        "550 5.2.1 mailbox disabled",
        "550 mailbox unavailable",  # no enhanced code: 550, 551, 553 bounce
        "551 user not local",
        "553 mailbox name not allowed",
    ],
)
def test_a_bad_address_on_rcpt_is_a_bounce(smtp_server: RecordingServer, reply: str) -> None:
    smtp_server.rcpt_replies["x@example.org"] = reply
    [error] = asyncio.run(send_all(messenger(smtp_server), ["x@example.org"]))
    assert isinstance(error, RecipientRefusedError)
    assert (error.code, error.recipient) == (int(reply[:3]), "x@example.org")


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.7.1 Relaying denied",
        "554 5.7.1 <x@example.org>: Relay access denied",
        "554 5.7.1 Sending without authentication is not permitted",
        "550 5.7.0 blocked by policy",
        "550 5.1.8 sender address rejected: domain not found",  # about us, not them
        "550 5.1.0 <bounces@example.org>: Sender address rejected: User unknown",
        "552 5.2.2 mailbox full",
        "554 5.0.0 transaction failed",
        "554 transaction failed",  # no enhanced code: neither 554 nor 552 bounce
        "552 too much mail",
        "550 4.1.1 inconsistent classes: judged by the reply code",
    ],
)
def test_a_policy_refusal_on_rcpt_is_permanent_but_not_a_bounce(
    smtp_server: RecordingServer, reply: str
) -> None:
    smtp_server.rcpt_replies["x@example.org"] = reply
    results = asyncio.run(send_all(messenger(smtp_server), ["x@example.org", "ok@example.org"]))
    error = results[0]
    assert isinstance(error, PermanentDeliveryError)
    expected_bounce = reply.startswith("550 4.1.1")  # no usable enhanced code: 550 bounces
    assert isinstance(error, RecipientRefusedError) is expected_bounce
    assert (error.code, error.recipient) == (int(reply[:3]), "x@example.org")
    assert reply[4:] in str(error)  # the server's words reach the ledger and the log
    assert results[1] is None  # the connection was reset and kept working
    assert [m.recipients for m in smtp_server.messages] == [("ok@example.org",)]


def test_5xx_on_data_is_permanent_but_not_a_bounce(smtp_server: RecordingServer) -> None:
    smtp_server.data_reply = "554 5.7.1 message rejected"
    [error] = asyncio.run(send_all(messenger(smtp_server), ["x@example.org"]))
    assert isinstance(error, PermanentDeliveryError)
    assert not isinstance(error, RecipientRefusedError)
    assert error.code == 554


def test_421_at_greeting_is_temporary(smtp_server: RecordingServer) -> None:
    smtp_server.greeting_reply = "421 4.3.2 too busy"
    [error] = asyncio.run(send_all(messenger(smtp_server), ["x@example.org"]))
    assert isinstance(error, TemporaryDeliveryError)
    assert error.code == 421
    assert smtp_server.messages == []


def test_disconnect_after_data_is_temporary_and_the_next_send_reconnects(
    smtp_server: RecordingServer,
) -> None:
    smtp_server.drop_after_data = 1
    sender = messenger(smtp_server, concurrency=1)

    async def scenario() -> tuple[Exception | None, Exception | None]:
        results = [await send_all_keep(sender, "first@example.org")]
        results.append(await send_all_keep(sender, "second@example.org"))
        await sender.close()
        return results[0], results[1]

    first, second = asyncio.run(scenario())
    assert isinstance(first, TemporaryDeliveryError) and first.code is None
    assert second is None
    assert [m.dropped for m in smtp_server.messages] == [True, False]


async def send_all_keep(sender: SmtpMessenger, recipient: str) -> Exception | None:
    try:
        await sender.send("bounces@example.org", recipient, MESSAGE)
    except Exception as exc:
        return exc
    return None


def test_server_down_then_back(smtp_server: RecordingServer) -> None:
    sender = messenger(smtp_server, concurrency=1)

    async def scenario() -> list[Exception | None]:
        results = [await send_all_keep(sender, "a@example.org")]
        smtp_server.stop()
        results.append(await send_all_keep(sender, "b@example.org"))  # pooled conn is dead
        results.append(await send_all_keep(sender, "c@example.org"))  # refused
        smtp_server.start()
        results.append(await send_all_keep(sender, "d@example.org"))
        await sender.close()
        return results

    results = asyncio.run(scenario())
    assert results[0] is None and results[3] is None
    assert all(isinstance(r, TemporaryDeliveryError) for r in results[1:3])
    assert [m.recipients[0] for m in smtp_server.messages] == ["a@example.org", "d@example.org"]


def test_a_slow_reply_to_data_is_waited_for(smtp_server: RecordingServer) -> None:
    smtp_server.data_delay = 1.5  # longer than the command timeout, shorter than DATA's
    [result] = asyncio.run(
        send_all(messenger(smtp_server, timeout=0.5, data_timeout=10.0), ["slow@example.org"])
    )
    assert result is None
    assert len(smtp_server.messages) == 1


def test_starttls_required_but_not_offered_sends_nothing(smtp_server: RecordingServer) -> None:
    results = asyncio.run(
        send_all(messenger(smtp_server, security="starttls"), ["a@example.org", "b@example.org"])
    )
    assert all(isinstance(r, ConfigError) for r in results)
    assert "STARTTLS" in str(results[0])
    assert smtp_server.messages == []
    assert not any(c.startswith("MAIL") for c in smtp_server.commands)


def _tls_server(certificate: tuple[Path, Path], pipelining: bool = False) -> RecordingServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return RecordingServer(tls_context=context, require_starttls=True, pipelining=pipelining)


@pytest.mark.parametrize("pipelining", [False, True])
def test_starttls_with_a_trusted_certificate(
    certificate: tuple[Path, Path], pipelining: bool
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    with _tls_server(certificate, pipelining) as server:
        sender = SmtpMessenger(
            SmtpConfig(host=server.host, port=server.port, security="starttls", timeout=5.0),
            tls_context=trusted,
            local_hostname="client.test",
        )
        [result] = asyncio.run(send_all(sender, ["tls@example.org"]))
        assert result is None
        assert len(server.messages) == 1
        assert server.pipelined == [pipelining]  # the group went through TLS too


def test_an_untrusted_certificate_is_a_configuration_error(
    certificate: tuple[Path, Path],
) -> None:
    with _tls_server(certificate) as server:
        sender = SmtpMessenger(
            SmtpConfig(host=server.host, port=server.port, security="starttls", timeout=5.0),
            local_hostname="client.test",
        )  # system CAs: the self-signed certificate is not trusted
        [result] = asyncio.run(send_all(sender, ["tls@example.org"]))
        assert isinstance(result, ConfigError)
        assert server.messages == []


def _implicit_tls_server(
    certificate: tuple[Path, Path], pipelining: bool = False
) -> ImplicitTlsServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return ImplicitTlsServer(tls_context=context, pipelining=pipelining)


@pytest.mark.parametrize("pipelining", [False, True])
def test_implicit_tls_with_a_trusted_certificate(
    certificate: tuple[Path, Path], pipelining: bool
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    with _implicit_tls_server(certificate, pipelining) as server:
        sender = SmtpMessenger(
            SmtpConfig(host=server.host, port=server.port, security="tls", timeout=5.0),
            tls_context=trusted,
            local_hostname="client.test",
        )
        results = asyncio.run(send_all(sender, ["tls@example.org", "tls2@example.org"]))
        assert results == [None, None]
        assert sorted(m.recipients[0] for m in server.messages) == [
            "tls2@example.org",
            "tls@example.org",
        ]
        assert server.pipelined == [pipelining] * 2


def test_implicit_tls_with_an_untrusted_certificate_is_a_configuration_error(
    certificate: tuple[Path, Path],
) -> None:
    # aiosmtplib wraps the handshake's SSLCertVerificationError in SMTPConnectError:
    # it must still stop the run, not be retried for days as a connection problem.
    with _implicit_tls_server(certificate) as server:
        sender = SmtpMessenger(
            SmtpConfig(host=server.host, port=server.port, security="tls", timeout=5.0),
            local_hostname="client.test",
        )  # system CAs: the self-signed certificate is not trusted
        results = asyncio.run(send_all(sender, ["a@example.org", "b@example.org"]))
        assert all(isinstance(r, ConfigError) for r in results), results
        assert "certificate is not trusted" in str(results[0])
        assert server.messages == []
        assert not any(c.startswith("MAIL") for c in server.commands)


def test_implicit_tls_against_a_plain_server_is_a_configuration_error(
    smtp_server: RecordingServer,
) -> None:
    # security = "tls" pointed at a port that speaks plain SMTP (e.g. 587 instead of 465).
    results = asyncio.run(send_all(messenger(smtp_server, security="tls"), ["a@example.org"]))
    assert isinstance(results[0], ConfigError), results
    assert "TLS handshake" in str(results[0])
    assert smtp_server.messages == []


def test_maildir_holds_complete_messages(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    maildir = MaildirMessenger(outbox)

    async def scenario() -> None:
        await asyncio.gather(
            *(maildir.send("b@example.org", f"u{i}@example.org", MESSAGE) for i in range(5))
        )
        await maildir.close()

    asyncio.run(scenario())
    files = sorted((outbox / "new").iterdir())
    assert len(files) == 5 and not list((outbox / "tmp").iterdir())
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message["Subject"] == "hi"
        assert message.get_content() == "Hello.\n.dot line\n"
