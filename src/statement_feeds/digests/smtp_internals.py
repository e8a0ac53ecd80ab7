"""The fast SMTP path, and every aiosmtplib internal it touches, in one place.

aiosmtplib's ``mail``/``rcpt``/``data`` parse every address with the ``email``
package and run two regular expressions over every message (line endings,
dot-stuffing): about a third of the CPU time of an edition. Our messages already have
CRLF line endings and plain addresses, so the same commands are sent through
``SMTP.execute_command`` and the protocol directly, falling back to aiosmtplib's own
quoting and normalisation for anything unusual. Errors are aiosmtplib's exceptions,
raised for the same replies, so ``map_smtp_errors`` sees no difference.

What this relies on beyond aiosmtplib's documented API; nothing else in the project
touches these (tests/digests/test_smtp_internals.py checks each one against the
installed aiosmtplib, and that no other module reaches for them):

* ``SMTP.execute_command(*args: bytes, timeout=...) -> SMTPResponse``: one raw command,
  without the EHLO-if-needed that ``mail``/``rcpt`` do first.
* ``SMTP.is_ehlo_or_helo_needed`` (property): so :func:`greet_if_needed` can do that
  EHLO once per connection instead.
* ``SMTP.protocol``: the connection's ``SMTPProtocol`` (instance attribute, ``None``
  while not connected).
* ``SMTPProtocol.write(data: bytes)`` and ``SMTPProtocol.read_response(timeout=None)
  -> SMTPResponse``: the DATA payload and the reply to its final ".".
* PIPELINING (RFC 2920, :func:`open_data`): ``SMTP.transport`` (the connection's
  transport, ``None`` while not connected) is lent to a :class:`.smtp_replies.ReplyReader`
  with ``transport.set_protocol`` for one group of commands and given back to
  ``SMTP.protocol``, which reads nothing meanwhile (it ignores data it did not ask for).
* ``aiosmtplib.protocol.normalize_message_line_endings(message: bytes) -> bytes``.
* ``aiosmtplib.email.quote_address(address: str) -> str``.
* ``SMTPStatus.completed`` (250), ``.will_forward`` (251), ``.start_input`` (354).
* The exceptions raised as aiosmtplib raises them: ``SMTPSenderRefused(code, message,
  sender)``, ``SMTPRecipientRefused(code, message, recipient)``,
  ``SMTPDataError(code, message)``, ``SMTPServerDisconnected(message)``.

Proven with aiosmtplib 5.1.3. 5.1.2 has no ``normalize_message_line_endings`` (the
test fails there), so pyproject.toml asks for ``>=5.1.3,<6``.
"""

from __future__ import annotations

import asyncio
import re

import aiosmtplib
import aiosmtplib.email
import aiosmtplib.protocol
from aiosmtplib import SMTPStatus

from ..domain.digest_message import CrlfMessage, DotFreeMessage, crlf_only
from .smtp_replies import ReplyReader

__all__ = [
    "content",
    "data",
    "data_payload",
    "greet_if_needed",
    "mail",
    "offers_pipelining",
    "open_data",
    "quoted",
    "rcpt",
]

_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\],;:\\\"@]+@[^\s<>()\[\],;:\\\"@]+")


async def greet_if_needed(client: aiosmtplib.SMTP) -> None:
    """EHLO (HELO if refused) unless done: the raw commands below do not ask for it."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()


def quoted(address: str) -> bytes:
    """``<address>`` as sent in MAIL FROM / RCPT TO."""
    if address.isascii() and _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return aiosmtplib.email.quote_address(address).encode("ascii")


async def mail(client: aiosmtplib.SMTP, sender: str) -> None:
    _sender_accepted(await client.execute_command(b"MAIL", b"FROM:" + quoted(sender)), sender)


async def rcpt(client: aiosmtplib.SMTP, recipient: str) -> None:
    response = await client.execute_command(b"RCPT", b"TO:" + quoted(recipient))
    _recipient_accepted(response, recipient)


# The replies accepting MAIL and RCPT, pipelined or not (open_data uses them too).
def _sender_accepted(response: aiosmtplib.SMTPResponse, sender: str) -> None:
    if response.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)


def _recipient_accepted(response: aiosmtplib.SMTPResponse, recipient: str) -> None:
    if response.code not in _RCPT_OK:
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)


_RCPT_OK = (SMTPStatus.completed, SMTPStatus.will_forward)


def data_payload(message: bytes) -> bytes:
    """The message as sent after DATA: CRLF line ends, dot-stuffed, ending in CRLF . CRLF."""
    # A composed digest was checked as it was composed (domain.digest_message); anything
    # else is scanned here.
    stuffing = not isinstance(message, DotFreeMessage)
    if not isinstance(message, CrlfMessage) and not crlf_only(message):
        message = aiosmtplib.protocol.normalize_message_line_endings(message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if stuffing:
        message = message.replace(b"\r\n.", b"\r\n..")
        if message.startswith(b"."):
            message = b"." + message
    return message + b".\r\n"


async def data(client: aiosmtplib.SMTP, message: bytes, timeout: float) -> None:
    response = await client.execute_command(b"DATA")
    if response.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    await content(client, message, timeout)


def offers_pipelining(client: aiosmtplib.SMTP) -> bool:
    """Did the server's EHLO offer PIPELINING (RFC 2920)?"""
    return client.supports_extension("pipelining")


async def open_data(
    client: aiosmtplib.SMTP, sender: str, recipient: str, timeout: float | None
) -> None:
    """MAIL, RCPT and DATA written at once: one round trip instead of three.

    Returns once the server answered 354 to DATA: send the message with
    :func:`content`, or close the connection (nothing else ends DATA without
    delivering something). Raises as :func:`mail`, :func:`rcpt` and :func:`data`
    would, for the first command refused, once every reply of the group is read; the
    connection then stays usable (RSET), unless the server opened DATA anyway, in
    which case it is closed. A connection lost before the replies: nothing was sent.
    """
    protocol, transport = client.protocol, client.transport
    if protocol is None or not isinstance(transport, asyncio.Transport) or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    reader = ReplyReader()
    transport.set_protocol(reader)
    try:
        transport.write(
            b"MAIL FROM:" + quoted(sender) + b"\r\nRCPT TO:" + quoted(recipient) + b"\r\nDATA\r\n"
        )
        replies: list[aiosmtplib.SMTPResponse] = []
        try:
            for _ in range(3):  # one at a time: a failed read keeps the replies before it
                replies.append(await reader.next(timeout))
        except aiosmtplib.SMTPException:
            # e.g. 421 to MAIL then a hang-up, or 550 to RCPT then no (or a garbled)
            # reply to DATA: unpipelined, that refusal is all the client would have
            # seen, so it says more than what came after it (a bounce stays a bounce).
            _refusal(replies, sender, recipient)
            raise
        if reader.leftover:  # more than it was asked: its next replies would be misread
            raise aiosmtplib.SMTPServerDisconnected("the server replied out of turn")
    except BaseException:
        client.close()  # half-read replies: this connection's state is unknown
        raise
    finally:
        if not transport.is_closing():
            transport.set_protocol(protocol)
    data_reply = replies[2]
    try:
        _refusal(replies, sender, recipient)
    except aiosmtplib.SMTPResponseException:
        if data_reply.code == SMTPStatus.start_input:
            client.close()  # DATA opened for an envelope it refused: only closing aborts it
        raise
    if data_reply.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(data_reply.code, data_reply.message)


def _refusal(replies: list[aiosmtplib.SMTPResponse], sender: str, recipient: str) -> None:
    """Raise for a refused MAIL or RCPT among the replies read so far."""
    if replies:
        _sender_accepted(replies[0], sender)
    if len(replies) > 1:
        _recipient_accepted(replies[1], recipient)


async def content(client: aiosmtplib.SMTP, message: bytes, timeout: float) -> None:
    """The message after the server's 354, and its reply."""
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
