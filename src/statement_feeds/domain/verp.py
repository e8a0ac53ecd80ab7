"""VERP envelope senders: ``bounces+<token>@example.org``, one per delivery.

A bounce that arrives hours after the SMTP conversation goes to the envelope sender
(``MAIL FROM``) of the message it returns. With ``digest.bounce_address`` set, every
digest is sent from its own address, ``<local>+<token>@<domain>``, and the token says
which delivery came back, so no guessing from the DSN's text is needed.

The token is ``<edition>-<mac>``: the edition number in decimal (0 for a confirmation
mail, which belongs to no edition) and 80 bits of an HMAC of the edition and the
address's email key under the site's signing keys, in lower-case base32 (16
characters). Why this shape:

* It is short (the whole local part must stay within RFC 5321's 64 octets) and
  only ``[a-z0-9-]``: safe unquoted in a local part, and read the same when an MTA
  lower-cases it (base32 has no case). Upper case is accepted too.
* The address is not in it: the token names a delivery, and the state maps it back
  by checking the edition's addresses (:meth:`VerpSigner.matches`), as the address
  cannot be read off the token nor a token made for another address without the key.
  A forged bounce therefore cannot mark anyone else bounced or unsubscribed.
* It is verified with every key (the first signs), so a rotated key keeps the bounces
  of messages already sent working.

Pure: the caller supplies the keys (``state.secrets.load_keys``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .addresses import AddressError, email_key, parse_address

__all__ = [
    "CONFIRMATION",
    "MAX_LOCAL",
    "BounceAddress",
    "BounceToken",
    "VerpSigner",
    "parse_bounce_address",
]

_PURPOSE = b"statement-feeds/verp\x00"  # a distinct prefix: no other use of the keys collides
_MAC_BYTES = 10  # 80 bits: 16 base32 characters, far beyond guessing by sending mail
CONFIRMATION = 0  # the "edition" of a confirmation mail
MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1: octets in a local part
# "+", an edition of up to 10 digits, "-", the MAC: what a VERP local part adds.
_TOKEN_ROOM = 1 + 10 + 1 + 16
_EDITIONS = 10**10  # what fits in those 10 digits
_TOKEN = re.compile(r"(0|[1-9][0-9]{0,9})-([a-z2-7]{16})")


@dataclass(frozen=True, slots=True)
class BounceToken:
    """A token's parts, well-formed but not yet verified."""

    edition_id: int
    mac: bytes


@dataclass(frozen=True, slots=True)
class BounceAddress:
    """``digest.bounce_address`` split: the VERP addresses are ``local+token@domain``."""

    local: str
    domain: str

    @property
    def email(self) -> str:
        return f"{self.local}@{self.domain}"

    def envelope(self, token: str) -> str:
        return f"{self.local}+{token}@{self.domain}"

    def token_in(self, address: str) -> str | None:
        """The token of a VERP address of ours (any case), or None if it is not one."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        prefix = self.local.lower() + "+"
        if not at or domain.lower() != self.domain.lower():
            return None
        if not local.lower().startswith(prefix):
            return None
        return local[len(prefix) :]


def parse_bounce_address(text: str) -> BounceAddress:
    """Check ``digest.bounce_address``; :class:`ValueError` says what is wrong."""
    try:
        address = parse_address(text)
    except AddressError as exc:
        raise ValueError(f"not an address: {exc}") from None
    if "+" in address.local:
        raise ValueError(
            "must not contain '+': the VERP addresses are <local>+<token>@<domain>; "
            "give the plain address (bounces@example.org)"
        )
    if len(address.local.encode("utf-8")) + _TOKEN_ROOM > MAX_LOCAL:
        raise ValueError(
            f"its local part is too long: with '+<token>' it must fit in {MAX_LOCAL} "
            f"octets, so at most {MAX_LOCAL - _TOKEN_ROOM}"
        )
    return BounceAddress(address.local, address.domain)


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


class VerpSigner:
    """Makes and checks VERP tokens: signs with ``keys[0]``, verifies with all of them."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(key) < 16 for key in keys):
            raise ValueError("at least one secret key of 16 bytes or more is needed")
        self._keys = tuple(keys)

    def _mac(self, key: bytes, edition_id: int, email: str) -> bytes:
        text = f"{edition_id}\x00{email_key(email)}".encode()
        return hmac.new(key, _PURPOSE + text, hashlib.sha256).digest()[:_MAC_BYTES]

    def token(self, edition_id: int, email: str) -> str:
        """``<edition>-<mac>`` for this delivery (the same for every spelling of ``email``)."""
        if not 0 <= edition_id < _EDITIONS:
            raise ValueError(f"an edition number is 0 to {_EDITIONS - 1}")
        return f"{edition_id}-{_b32(self._mac(self._keys[0], edition_id, email))}"

    def envelope(self, bounce: BounceAddress, edition_id: int, email: str) -> str:
        return bounce.envelope(self.token(edition_id, email))

    def matches(self, token: BounceToken, email: str) -> bool:
        """Whether ``token`` was made for ``email`` (with any of the keys)."""
        return any(
            hmac.compare_digest(token.mac, self._mac(key, token.edition_id, email))
            for key in self._keys
        )

    def index(self, edition_id: int, emails: Iterable[str]) -> dict[bytes, str]:
        """MAC → address for an edition's addresses, under every key: one HMAC per address
        and key, so that many bounces of one edition cost a dictionary look-up each."""
        return {self._mac(key, edition_id, email): email for email in emails for key in self._keys}

    @staticmethod
    def parse(text: str) -> BounceToken | None:
        """The parts of a well-formed token (any case), else None; never raises."""
        match = _TOKEN.fullmatch(text.strip().lower())
        if match is None:
            return None
        try:  # 16 characters are 80 bits exactly: one spelling per MAC
            mac = base64.b32decode(match.group(2).upper())
        except (binascii.Error, ValueError):
            return None
        return BounceToken(int(match.group(1)), mac)
