"""The bytes of a digest message: pieces with per-subscriber slots, and its headers.

A bundle (see :mod:`.digest`) is rendered into :class:`Pieces`: bytes encoded once,
integer slots for the per-subscriber headers (``To``, ``Message-ID``,
``List-Unsubscribe``) and :class:`Line` body lines holding the per-subscriber
greeting or link. :meth:`MessageTemplate.fill` turns them into one subscriber's
message with a handful of ``bytes.join``/``replace`` calls.

Pure: no I/O.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP

from markupsafe import escape

from .addresses import AddressError, clean_header_text, parse_address, to_header
from .statements import Statement

__all__ = [
    "MESSAGE_ID_SLOT",
    "TO_SLOT",
    "UNSUBSCRIBE_SLOT",
    "CrlfMessage",
    "DotFreeMessage",
    "Line",
    "Markers",
    "MessageTemplate",
    "Pieces",
    "bundle_hash",
    "checked_message_id",
    "crlf_only",
    "dot_free",
    "qp",
    "recipient_header",
    "static_headers",
]

MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")  # printable ASCII, no < > or spaces


def recipient_header(email: str, name: str) -> bytes:
    """The ``To`` value for a ledger address, built from its checked parts.

    Planning records only canonical addresses (``core.addresses``: ASCII, an
    internationalised domain as its A-label). Anything else (rows written by older
    versions) is refused rather than sent: the envelope (RCPT TO) uses the same text.
    """
    try:
        address = parse_address(email)
    except AddressError as exc:
        raise ValueError(f"cannot address a message to {email!r}: {exc}") from None
    if address.email != email:
        raise ValueError(f"cannot address a message to {email!r}: send to {address.email}")
    return to_header(address, name)


class CrlfMessage(bytes):
    """A composed message whose every CR and LF is part of a CRLF pair.

    Checked piece by piece as it is composed (the bundle's pieces once, each
    subscriber's few short values at each fill), so a messenger need not scan the
    whole message again for its line ends before SMTP DATA: three scans of each ~17 kB
    message, ~45 us of a sender's ~300 (bench/payload_bench.py). Anything else (plain
    ``bytes``) is checked by the messenger as before.
    """

    __slots__ = ()


class DotFreeMessage(CrlfMessage):
    """A :class:`CrlfMessage` none of whose lines begins with a dot: SMTP DATA sends it
    as it is, with no dot-stuffing pass either (another ~15 us at 17 kB)."""

    __slots__ = ()


def crlf_only(data: bytes) -> bool:
    """True when every CR and LF in ``data`` is part of a CRLF pair."""
    pairs = data.count(b"\r\n")
    return data.count(b"\r") == pairs and data.count(b"\n") == pairs


def dot_free(piece: bytes) -> bool:
    """True when no line of ``piece`` begins with a dot, its first included: whatever
    comes before it in a message, it starts no line with one."""
    return not piece.startswith(b".") and b"\r\n." not in piece


def qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends; ``text`` uses ``\\n``, and ends in one."""
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


@dataclass(frozen=True, slots=True)
class Line:
    """A body line holding per-subscriber values: substituted, then QP-encoded."""

    raw: str
    html: bool


@dataclass(frozen=True, slots=True)
class Markers:
    """Stand-ins rendered where per-subscriber values go: alphanumeric, so escaping
    leaves them alone, and derived from the bundle hash, so statement text cannot
    contain them by accident or design."""

    greeting: str
    unsubscribe: str
    preferences: str

    @classmethod
    def for_bundle(cls, bundle_hash: str) -> Markers:
        part = bundle_hash[:20]
        return cls(f"SFG{part}X", f"SFU{part}X", f"SFP{part}X")

    def occur_in(self, line: str) -> bool:
        return self.greeting in line or self.unsubscribe in line or self.preferences in line


TO_SLOT, MESSAGE_ID_SLOT, UNSUBSCRIBE_SLOT = 0, 1, 2


class MessageTemplate:
    """A rendered bundle: byte pieces, header slots and per-subscriber body lines."""

    def __init__(self, pieces: Sequence[bytes | int | Line], markers: Markers) -> None:
        self._pieces = tuple(pieces)
        self._markers = markers
        # Pieces that each hold only CRLF pairs join into a message that does (a pair
        # split across two pieces would leave each with a bare CR or LF: not vouched).
        static = [p for p in self._pieces if isinstance(p, bytes)]
        self._crlf = all(crlf_only(p) for p in static)
        self._dot_free = self._crlf and all(dot_free(p) for p in static)

    def fill(
        self,
        to: bytes,
        message_id: str,
        list_unsubscribe: bytes,
        greeting: str,
        url: str,
        *,
        preferences_url: str = "",
    ) -> bytes:
        headers = (to, message_id.encode("ascii"), list_unsubscribe)
        greet, link = self._markers.greeting, self._markers.unsubscribe
        prefs = self._markers.preferences
        # The same escaping as jinja2's autoescape, so the result equals a straight render.
        greeting_html, url_html = str(escape(greeting)), str(escape(url))
        prefs_html = str(escape(preferences_url))
        out: list[bytes] = []
        crlf = self._crlf and all(crlf_only(header) for header in headers)
        dots = self._dot_free and all(dot_free(header) for header in headers)
        for piece in self._pieces:
            if type(piece) is bytes:
                out.append(piece)
            elif type(piece) is int:
                out.append(headers[piece])
            else:
                assert isinstance(piece, Line)
                if piece.html:
                    line = piece.raw.replace(greet, greeting_html).replace(link, url_html)
                    line = line.replace(prefs, prefs_html)
                else:
                    line = piece.raw.replace(greet, greeting).replace(link, url)
                    line = line.replace(prefs, preferences_url)
                encoded = qp(line)
                crlf = crlf and crlf_only(encoded)
                dots = dots and dot_free(encoded)
                out.append(encoded)
        message = b"".join(out)
        if not crlf:
            return message
        return DotFreeMessage(message) if dots else CrlfMessage(message)


class Pieces:
    """Accumulates pieces, merging adjacent bytes so filling joins as few as possible."""

    def __init__(self) -> None:
        self.items: list[bytes | int | Line] = []

    def add(self, item: bytes | int | Line) -> None:
        if isinstance(item, bytes) and self.items and isinstance(self.items[-1], bytes):
            self.items[-1] += item
        elif item != b"":
            self.items.append(item)

    def body(self, text: str, markers: Markers, *, is_html: bool) -> None:
        """QP-encode runs of static lines once; keep lines with markers for later."""
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        static: list[str] = []
        for line in lines:
            if markers.occur_in(line):
                if static:
                    self.add(qp("\n".join(static) + "\n"))
                    static = []
                self.add(Line(line + "\n", is_html))
            else:
                static.append(line)
        if static:
            self.add(qp("\n".join(static) + "\n"))


def static_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    """Headers shared by the bundle, encoded and folded by the email package (RFC 2047)."""
    message = EmailMessage(policy=SMTP)
    for name, value in headers:
        message[name] = clean_header_text(value)
    return message.as_bytes()[: -len(b"\r\n")]  # drop the blank line ending the headers


def checked_message_id(message_id: str) -> str:
    if not MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"not a Message-ID: {message_id!r}")
    return message_id


def bundle_hash(
    lang: str, statements: Sequence[Statement], corrected: Sequence[Statement] = ()
) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(lang.encode("utf-8"))
    for statement in statements:
        digest.update(b"\x00" + statement.id.encode("utf-8") + b"\x00" + statement.digest.encode())
    if corrected:  # a bundle without corrections keeps the hash it always had
        digest.update(b"\x01corrected")
        for statement in corrected:
            digest.update(b"\x00" + statement.id.encode() + b"\x00" + statement.digest.encode())
    return digest.hexdigest()
