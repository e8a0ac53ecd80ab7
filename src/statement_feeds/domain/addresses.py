"""Email addresses, checked part by part, and the header values built from them (pure).

An address is validated as what it is, ``local@domain``, never as what a header
parser decodes it into. ``=?utf-8?q?attacker=40evil.org=2C_anna?=@example.org`` is
a valid dot-atom to RFC 5322, yet Python's ``email`` package (like mail clients)
decodes the RFC 2047 encoded word in it: ``To: attacker@evil.org, anna@example.org``.

The rules:

* local part: an ASCII dot-atom (RFC 5322 3.2.3) of at most 64 characters without
  ``=?``, the start of an encoded word (legal, unused by real mailboxes, only ever a
  trick). Quoted local parts are refused: legal, practically unused, and a classic
  vehicle for header injection. A non-ASCII local part (RFC 6531) is refused with
  the reason: it needs SMTPUTF8 and UTF-8 headers all the way to the mailbox, and
  digests are 7-bit messages rendered once for many readers.
* domain: LDH labels (letters, digits, hyphens), at least two, the last not all
  digits (no IP literals), at most 253 characters. An internationalised domain is
  converted to its A-label (IDNA 2008 with UTS 46 mapping, the ``idna`` package):
  ``bücher.de`` → ``xn--bcher-kva.de``, plain ASCII that every server accepts, so
  such addresses are sent without SMTPUTF8.

The canonical form, :attr:`Address.email`, is what subscribers, the state database
and the delivery ledger hold: the local part as written, an ASCII domain as
written, an internationalised one as its A-label. :func:`email_key` is its lower
case, so ``user@bücher.de`` and ``User@XN--BCHER-KVA.DE`` are one subscriber.

Header values are built from the checked parts (:func:`header_address`,
:func:`to_header`), never by parsing a string, and display names are cleaned of
control and line-break characters first; a display name holding ``=?`` is sent as
encoded words of its literal text, so that no reader decodes it into other text.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email import headerregistry

import idna

__all__ = [
    "Address",
    "AddressError",
    "NotAsciiError",
    "address_problem",
    "canonical_email",
    "clean_header_text",
    "email_key",
    "header_address",
    "parse_address",
    "to_header",
]

MAX_LENGTH = 254  # RFC 5321 4.5.3.1.3: a path is at most 256 octets, "<" and ">" included
MAX_DISPLAY_NAME = 200  # characters of a display name kept in a header

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# The common case in one C-speed match: an ASCII dot-atom local part of at most 64
# characters without "=?", and a host name. Anything it rejects goes through the
# slow checks, which also say why.
_FAST_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_FAST = re.compile(
    r"(?=[^@]{1,64}@)(?![^@]*=\?)"
    + rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_FAST_LABEL}\.)+(?![0-9]+\Z){_FAST_LABEL})"
)
# C0 and C1 controls and Unicode's line and paragraph separators: line breaks to
# str.splitlines, mail clients or JavaScript, never wanted in a header.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_NOT_PLAIN = re.compile(r'[\s,;<>()\[\]"\\:]')


class AddressError(ValueError):
    """Why a text is not one usable recipient address (``str(error)`` says it)."""


class NotAsciiError(AddressError):
    """The local part is not ASCII: the address would need SMTPUTF8 (RFC 6531)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A checked address: ASCII ``local`` dot-atom, ASCII ``domain`` (A-labels)."""

    local: str
    domain: str

    @property
    def email(self) -> str:
        """The canonical form: what is stored, put in headers and given to RCPT TO."""
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """The identity of the address: case-insensitive, as the contract says."""
        return self.email.lower()


def parse_address(text: str) -> Address:
    """The checked :class:`Address` of ``text`` (trimmed); :class:`AddressError` if none."""
    text = text.strip()
    match = _FAST.fullmatch(text) if len(text) <= MAX_LENGTH else None
    if match is not None:
        return Address(match.group(1), match.group(2))
    local, domain = _split(text)
    _check_local(local)
    address = Address(local, _ascii_domain(domain))
    if len(address.email) > MAX_LENGTH:
        raise AddressError(f"an address is at most {MAX_LENGTH} characters long")
    return address


def canonical_email(text: str) -> str:
    """:attr:`Address.email` of ``text``; :class:`AddressError` if it is no address.

    The same rules as :func:`parse_address`, without building an Address for the
    common case (an ASCII address: trimmed, it is its own canonical form).
    """
    text = text.strip()
    if len(text) <= MAX_LENGTH and _FAST.fullmatch(text):
        return text
    return parse_address(text).email


def address_problem(text: str) -> str | None:
    """Why ``text`` is not one usable recipient address, or None if it is."""
    try:
        parse_address(text)
    except AddressError as exc:
        return str(exc)
    return None


def email_key(email: str) -> str:
    """The identity of an address: its canonical form in lower case.

    Canonical addresses are ASCII (the fast path). Anything else is parsed, so that
    ``user@bücher.de`` finds ``user@xn--bcher-kva.de``; text that is no address at
    all is only lower-cased (it can match nothing valid).
    """
    if email.isascii():
        return email.strip().lower()
    try:
        return parse_address(email).key
    except AddressError:
        return email.strip().lower()


def _split(text: str) -> tuple[str, str]:
    if not text:
        raise AddressError("the address is empty")
    if _CONTROL.search(text):
        raise AddressError("control characters (CR/LF) in the address could inject mail headers")
    if _NOT_PLAIN.search(text):
        raise AddressError(
            "an address must be one plain address (no spaces, commas, <>, quotes or names)"
        )
    local, at, domain = text.rpartition("@")
    if not at or "@" in local:
        raise AddressError("an address needs exactly one @")
    return local, domain


def _check_local(local: str) -> None:
    if "=?" in local:
        raise AddressError(
            "the part before @ contains '=?', the start of an RFC 2047 encoded word, which "
            "mail programs decode into other text (even other addresses)"
        )
    if not local.isascii():
        raise NotAsciiError(
            f"the part before @ ({local!r}) is not ASCII: such an address needs SMTPUTF8 "
            "all the way to the mailbox, which statement-feeds does not send; ask for an "
            "ASCII address (the domain may be internationalised, e.g. name@bücher.de)"
        )
    if not local or len(local) > 64 or not _LOCAL.fullmatch(local):
        raise AddressError(f"the part before @ ({local!r}) is not a valid mailbox name")


def _ascii_domain(domain: str) -> str:
    """``domain`` checked, an internationalised one as its A-label."""
    ascii_domain = domain
    if not domain.isascii():
        try:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise AddressError(
                f"the domain {domain!r} is not a valid internationalised host name ({exc})"
            ) from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise AddressError(f"the domain {domain!r} is not a valid host name (e.g. example.org)")
    if labels[-1].isdigit():
        raise AddressError(f"the domain {domain!r} must be a host name, not an IP address")
    if len(ascii_domain) > 253:
        raise AddressError(f"the domain {domain!r} is longer than 253 characters")
    return ascii_domain


# -- header values -----------------------------------------------------------------------


def clean_header_text(value: str) -> str:
    """One line of text: CR, LF, U+2028 and other controls become spaces (no injection)."""
    return " ".join(_CONTROL.sub(" ", value).split())


def header_address(address: Address) -> headerregistry.Address:
    """The ``email`` package's Address for a header, built from the checked parts.

    Assigning it (``message["To"] = header_address(...)``) puts exactly this one
    address in the header. No display name on purpose: when it folds a header the
    email package parses the text of the Address again, and would decode an encoded
    word in a name (``=?utf-8?q?a=2C_b?=`` became ``a, b``: two addresses). Named
    recipients go through :func:`to_header`.
    """
    return headerregistry.Address(username=address.local, domain=address.domain)


def to_header(address: Address, display_name: str) -> bytes:
    """An address header's value as 7-bit bytes, for messages assembled without a parser.

    The name is cleaned to one line of at most 200 characters. ASCII names are
    quoted by the email package's rules when they hold specials; a name that is not
    ASCII, or holds ``=?`` (an encoded word readers would decode into something
    else), becomes RFC 2047 base64 words of its exact text.
    """
    name = clean_header_text(display_name)[:MAX_DISPLAY_NAME]
    value = headerregistry.Address(display_name=name, username=address.local, domain=address.domain)
    if not name or (name.isascii() and "=?" not in name):
        return str(value).encode("ascii")  # str(): quoting only, nothing parsed
    return f"{_encoded_words(name)} <{value.addr_spec}>".encode("ascii")


def _encoded_words(name: str) -> str:
    """RFC 2047 base64 words of at most 75 characters, folded with CRLF + space."""
    words: list[str] = []
    chunk = b""
    for char in name:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 45:  # 45 bytes → 60 base64 chars → 72-char word
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    words.append(chunk.decode("utf-8"))
    return "\r\n ".join(
        "=?utf-8?b?" + binascii.b2a_base64(w.encode("utf-8"), newline=False).decode() + "?="
        for w in words
    )
