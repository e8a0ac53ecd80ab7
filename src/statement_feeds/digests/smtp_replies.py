"""Reading several SMTP replies in a row: :class:`ReplyReader`, for PIPELINING.

aiosmtplib's protocol reads one reply per command written: a second reply that arrives
with the first is kept in its buffer but never handed over, and a reply that arrives
while no command waits is dropped. A pipelined group
(RFC 2920: MAIL, RCPT and DATA written at once) gets its three replies in one packet
or several, so ``smtp_internals`` lends the connection to this reader for the group
and gives it back afterwards.

Pure asyncio: it parses replies (RFC 5321 4.2: ``250-...`` continues, ``250 ...``
ends) into aiosmtplib's own ``SMTPResponse`` and raises aiosmtplib's exceptions for a
dropped connection or a timeout, so ``map_smtp_errors`` sees no difference.
"""

from __future__ import annotations

import asyncio
from collections import deque

import aiosmtplib

__all__ = ["INVALID", "MAX_REPLY", "ReplyReader"]

MAX_REPLY = 64 * 1024  # bytes of one reply, continuation lines included (as aiosmtplib)
MAX_LINE = 8192  # bytes of one line of a reply (aiosmtplib's MAX_LINE_LENGTH)
# The code aiosmtplib gives a reply it cannot parse (its status "invalid_response"):
# map_smtp_errors makes it a temporary failure, as for any code it does not know.
INVALID = -1


class ReplyReader(asyncio.Protocol):
    """Collects whole replies as they arrive; :meth:`next` hands them out in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._replies: deque[aiosmtplib.SMTPResponse] = deque()
        self._failure: aiosmtplib.SMTPException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def leftover(self) -> bool:
        """Bytes or replies nobody asked for: the server is out of step with us."""
        return bool(self._buffer or self._replies)

    def data_received(self, data: bytes) -> None:
        if self._failure is not None:
            return
        self._buffer.extend(data)
        try:
            while (reply := self._parse()) is not None:
                self._replies.append(reply)
        except aiosmtplib.SMTPResponseException as exc:
            self._failure = exc
        self._wake()

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(aiosmtplib.SMTPServerDisconnected(f"Connection lost: {exc or 'closed'}"))

    async def next(self, timeout: float | None) -> aiosmtplib.SMTPResponse:
        """The next reply; SMTPServerDisconnected or SMTPReadTimeoutError if none comes."""
        while not self._replies:
            if self._failure is not None:
                raise self._failure
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response"
                ) from None
            finally:
                self._waiter = None
        return self._replies.popleft()

    def _fail(self, exc: aiosmtplib.SMTPException) -> None:
        if self._failure is None:
            self._failure = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _parse(self) -> aiosmtplib.SMTPResponse | None:
        """One whole reply off the buffer, or None while it is incomplete."""
        lines: list[bytes] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            line = bytes(self._buffer[start : end + 1])
            start = end + 1
            # As aiosmtplib: every line is checked, and the last line's code is the
            # reply's ("250-ok" then "550 no" is a 550, not an acceptance).
            if len(line) > MAX_LINE:
                raise aiosmtplib.SMTPResponseException(INVALID, "Response too long")
            _code(line)
            lines.append(line)
            if line[3:4] != b"-":  # the last line of the reply
                del self._buffer[:start]
                return _reply(lines)
        if len(self._buffer) > MAX_REPLY:
            raise aiosmtplib.SMTPResponseException(INVALID, "Response too long")
        return None


def _code(line: bytes) -> int:
    try:
        return int(line[:3])
    except ValueError:
        text = line.decode("utf-8", "replace").strip()
        raise aiosmtplib.SMTPResponseException(
            INVALID, f"Malformed SMTP response line: {text}"
        ) from None


def _reply(lines: list[bytes]) -> aiosmtplib.SMTPResponse:
    message = bytearray()
    for line in lines:  # as aiosmtplib: no line break before the first text
        if message:
            message += b"\n"
        message += line[4:].strip(b" \t\r\n")
    text = bytes(message).decode("utf-8", "surrogateescape")
    return aiosmtplib.SMTPResponse(_code(lines[-1]), text)
