"""HMAC tokens: stable, unguessable Message-IDs and signed unsubscribe tokens.

Pure: the caller supplies the keys (``adapters.secrets`` loads them). The first
key signs; every key verifies, so a key can be rotated without breaking the
unsubscribe links in digests already delivered.

Links never carry an address (they end up in proxy logs, browser history and
referrers). They carry a *subscriber id*: a keyed hash of the address
(:func:`subscriber_id`, with an id key that the state database holds and never
rotates), which the state store maps back to the address. An unsubscribe token is
``<subscriber id>.<mac>``, the MAC made with the signing keys.

Tokens of the format before this one began with the address itself, base64
(``<address>.<mac>``). :meth:`Signer.verify_legacy_unsubscribe` still accepts them,
for unsubscribing only and with no end date: they are in digests already delivered,
and an unsubscribe link must keep working. Nothing issues them any more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = ["Signer", "preferences_url", "subscriber_id", "unsubscribe_url"]

_PURPOSE = b"statement-feeds/token\x00"  # purpose-bound expiring tokens (web side)

# Distinct prefixes keep the uses of one key from ever producing the same MAC.
_MESSAGE_ID = b"statement-feeds/message-id\x00"
_UNSUBSCRIBE = b"statement-feeds/unsubscribe\x00"  # legacy tokens: the address inside
_UNSUBSCRIBE_ID = b"statement-feeds/unsubscribe-id\x00"
_SUBSCRIBER_ID = b"sf/subscriber-id"  # BLAKE2b personalisation: at most 16 bytes
_LANG_TAG = re.compile(r"[A-Za-z0-9-]{1,35}")
_MAC_BYTES = 16  # 128 bits: unguessable, and keeps links short


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Decode only the one spelling ``_b64`` produces, so tokens are not malleable.

    The decoder alone ignores the unused low bits of the last character and skips
    characters outside the alphabet: 16 spellings of one MAC would all verify, and a
    "forged" token that decodes to the real MAC would be accepted.
    """
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical encoding")
    return data


def subscriber_id(id_key: bytes, email: str) -> str:
    """The opaque id of an address in links: 22 URL-safe characters.

    The same for every spelling of the address (case, surrounding spaces), and
    not computable from the address without ``id_key``.
    """
    key = email.strip().lower()  # core.subscribers.email_key
    # Keyed BLAKE2b is a PRF like HMAC, and several times cheaper to set up per call
    # (the store computes one per address it records: 100,000 for a new list).
    digest = hashlib.blake2b(
        key.encode("utf-8"), key=id_key[:64], digest_size=_MAC_BYTES, person=_SUBSCRIBER_ID
    ).digest()
    return base64.urlsafe_b64encode(digest)[:22].decode("ascii")  # 16 bytes, without "=="


class Signer:
    """Signs with ``keys[0]``, verifies against all of ``keys``.

    ``id_key`` (the state database's, see :func:`subscriber_id`) is needed only to
    issue unsubscribe tokens.
    """

    def __init__(self, keys: Sequence[bytes], *, id_key: bytes | None = None) -> None:
        if not keys or any(len(key) < 16 for key in keys):
            raise ValueError("at least one secret key of 16 bytes or more is needed")
        if id_key is not None and len(id_key) < 16:
            raise ValueError("the subscriber id key must be 16 bytes or more")
        self._keys = tuple(keys)
        self._id_key = id_key
        self._prepared: dict[tuple[bytes, bytes], hmac.HMAC] = {}  # (key, purpose): see _mac

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The signing keys (the newest first), for signers of other tokens (VERP)."""
        return self._keys

    def subscriber_id(self, email: str) -> str:
        if self._id_key is None:
            raise ValueError("no subscriber id key: open the state store to get it")
        return subscriber_id(self._id_key, email)

    def _mac(self, key: bytes, purpose: bytes, value: str) -> bytes:
        # HMAC-SHA256 of purpose + value. The key and the purpose are absorbed once per
        # signer and copied per call: 3.3-3.9 us instead of hmac.new's 5.7-7.6 (a sender
        # makes two per message, planning one per delivery). The same bytes as
        # hmac.new(key, purpose + value).digest(): tests/domain/test_tokens.py pins them.
        prepared = self._prepared.get((key, purpose))
        if prepared is None:
            prepared = self._prepared[key, purpose] = hmac.new(key, purpose, "sha256")
        mac = prepared.copy()
        mac.update(value.encode("utf-8"))
        return mac.digest()[:_MAC_BYTES]

    def message_id(self, edition_id: int, email: str, domain: str) -> str:
        """``<hex@domain>``: the same for the same edition and address, unguessable otherwise."""
        mac = self._mac(self._keys[0], _MESSAGE_ID, f"{edition_id}\x00{email.lower()}")
        return f"<{edition_id}.{mac.hex()}@{domain}>"

    def unsubscribe_token(self, email: str) -> str:
        """URL-safe ``<subscriber id>.<mac>``: no address in it (see the module docstring)."""
        sid = self.subscriber_id(email)
        return f"{sid}.{_b64(self._mac(self._keys[0], _UNSUBSCRIBE_ID, sid))}"

    def verify_unsubscribe(self, token: str) -> str | None:
        """The subscriber id of a valid token, else None (never raises on bad input).

        The caller looks the address up in the state store.
        """
        sid, mac = _two_parts(token)
        if sid is None or mac is None:
            return None
        if any(hmac.compare_digest(mac, self._mac(k, _UNSUBSCRIBE_ID, sid)) for k in self._keys):
            return sid
        return None

    def verify_legacy_unsubscribe(self, token: str) -> str | None:
        """The address inside a valid token of the old format (``<address>.<mac>``).

        Accepted forever, for unsubscribing only: see the module docstring.
        """
        encoded, mac = _two_parts(token)
        if encoded is None or mac is None:
            return None
        try:
            address = _unb64(encoded).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        for key in self._keys:
            if hmac.compare_digest(mac, self._mac(key, _UNSUBSCRIBE, address)):
                return address
        return None

    def sign(self, purpose: str, payload: str, expires_at: int) -> str:
        """``<payload>.<expiry>.<mac>``: bound to ``purpose`` and valid until ``expires_at``.

        The purpose is inside the MAC, so a token minted for one use (say, a CSRF
        form field) can never be replayed as another (a subscription confirmation).
        ``expires_at`` is a Unix time in seconds.
        """
        encoded = _b64(payload.encode("utf-8"))
        mac = self._mac(self._keys[0], _PURPOSE, _signed_text(purpose, encoded, expires_at))
        return f"{encoded}.{expires_at:x}.{_b64(mac)}"

    def verify(self, purpose: str, token: str, now: float) -> str | None:
        """The payload of a valid, unexpired token for ``purpose``; None otherwise."""
        parts = token.strip().split(".")
        if len(parts) != 3:
            return None
        encoded, expiry_text, mac_text = parts
        try:
            expires_at = int(expiry_text, 16)
            mac = _unb64(mac_text)
            payload = _unb64(encoded).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        if expires_at <= now or f"{expires_at:x}" != expiry_text:
            return None
        text = _signed_text(purpose, encoded, expires_at)
        if any(hmac.compare_digest(mac, self._mac(key, _PURPOSE, text)) for key in self._keys):
            return payload
        return None


def _two_parts(token: str) -> tuple[str | None, bytes | None]:
    """``<text>.<mac>`` → (text, MAC bytes); (None, None) if it is not that shape."""
    text, dot, mac_text = token.strip().partition(".")
    if not dot or not text:
        return None, None
    try:
        return text, _unb64(mac_text)
    except (binascii.Error, ValueError):
        return None, None


def _signed_text(purpose: str, encoded: str, expires_at: int) -> str:
    # NUL cannot occur in a purpose name or in base64, so the fields cannot run together.
    return f"{purpose}\x00{encoded}\x00{expires_at}"


def unsubscribe_url(public_url: str, token: str, lang: str = "") -> str:
    """The one-click link (RFC 8058): GET shows a confirmation, POST unsubscribes.

    ``lang``, the digest's language, opens the page in it (``web.subscriptions``
    accepts it only if it is one of the subscriber's languages).
    """
    return _page_url(public_url, "unsubscribe", token, lang)


def preferences_url(public_url: str, token: str, lang: str = "") -> str:
    """A digest's "change preferences" link: the unsubscribe token (which already
    leads to the preferences page from the unsubscribe page) and never expires."""
    return _page_url(public_url, "preferences", token, lang)


def _page_url(public_url: str, page: str, token: str, lang: str) -> str:
    base = public_url if public_url.endswith("/") else public_url + "/"
    url = f"{base}{page}?token={token}"
    # A language tag is letters, digits and hyphens: anything else is left out, not escaped.
    return f"{url}&lang={lang}" if _LANG_TAG.fullmatch(lang) else url
