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

import re

import aiosmtplib
import aiosmtplib.email
import aiosmtplib.protocol
from aiosmtplib import SMTPStatus

from ..domain.digest_message import CrlfMessage, DotFreeMessage, crlf_only

__all__ = ["data", "data_payload", "greet_if_needed", "mail", "quoted", "rcpt"]

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
    response = await client.execute_command(b"MAIL", b"FROM:" + quoted(sender))
    if response.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)


async def rcpt(client: aiosmtplib.SMTP, recipient: str) -> None:
    response = await client.execute_command(b"RCPT", b"TO:" + quoted(recipient))
    if response.code not in {SMTPStatus.completed, SMTPStatus.will_forward}:
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)


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
