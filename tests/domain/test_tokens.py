from __future__ import annotations

import base64
import hmac

import pytest

from statement_feeds.domain.tokens import Signer, subscriber_id, unsubscribe_url

OLD, NEW = b"o" * 32, b"n" * 32
ID_KEY = b"i" * 32


def test_message_id_is_stable_per_edition_and_address() -> None:
    signer = Signer([NEW])
    first = signer.message_id(7, "Anna@Example.org", "example.org")
    assert first == signer.message_id(7, "anna@example.org", "example.org")
    assert first != signer.message_id(8, "anna@example.org", "example.org")
    assert first != signer.message_id(7, "boris@example.org", "example.org")
    assert first != Signer([OLD]).message_id(7, "anna@example.org", "example.org")
    assert first.startswith("<7.") and first.endswith("@example.org>")
    assert "anna" not in first  # the address cannot be read off the header


def test_unsubscribe_token_round_trips_and_rejects_forgeries() -> None:
    signer = Signer([NEW], id_key=ID_KEY)
    token = signer.unsubscribe_token("Анна@example.org")
    sid = subscriber_id(ID_KEY, "анна@example.org")
    assert signer.verify_unsubscribe(token) == sid
    assert signer.unsubscribe_token(" АННА@example.org ") == token  # one id per address
    encoded, _, mac = token.partition(".")
    other = signer.unsubscribe_token("boris@example.org").partition(".")[0]
    for forged in (f"{other}.{mac}", f"{encoded}.{_flip(mac)}", encoded, "", "!!.??", "a.b.c"):
        assert signer.verify_unsubscribe(forged) is None
    assert signer.verify_legacy_unsubscribe(token) is None  # the formats never mix


def test_tokens_do_not_reveal_the_address() -> None:
    signer = Signer([NEW], id_key=ID_KEY)
    address = "boris@example.org"
    token = signer.unsubscribe_token(address)
    for start in range(3):  # base64 of the address, at any alignment
        fragment = base64.urlsafe_b64encode(address.encode()[start:]).decode()[:8]
        assert fragment not in token
    assert subscriber_id(ID_KEY, address) != subscriber_id(b"j" * 32, address)  # keyed
    with pytest.raises(ValueError):
        Signer([NEW]).unsubscribe_token(address)  # no id key: no token (never the address)


def _legacy_token(key: bytes, address: str) -> str:
    """An unsubscribe token as versions before subscriber ids made them (still in old
    digests): base64 of the address, a dot, the MAC. Written out here on purpose."""
    mac = hmac.new(key, b"statement-feeds/unsubscribe\x00" + address.encode(), "sha256")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(address.encode())}.{b64(mac.digest()[:16])}"


def test_legacy_tokens_still_verify_and_forgeries_do_not() -> None:
    old = _legacy_token(NEW, "boris@example.org")
    assert old.startswith("Ym9yaXNAZXhhbXBsZS5vcmc.")  # the address, readable: why it went
    signer = Signer([NEW], id_key=ID_KEY)
    assert signer.verify_legacy_unsubscribe(old) == "boris@example.org"
    assert Signer([OLD, NEW]).verify_legacy_unsubscribe(old) == "boris@example.org"
    assert signer.verify_unsubscribe(old) is None
    encoded, _, mac = old.partition(".")
    other = _legacy_token(NEW, "anna@example.org").partition(".")[0]
    for forged in (f"{other}.{mac}", f"{encoded}.{_flip(mac)}", encoded, "", old[:-2]):
        assert signer.verify_legacy_unsubscribe(forged) is None
    assert Signer([OLD]).verify_legacy_unsubscribe(old) is None


def _flip(text: str) -> str:
    # The first base64 character carries six bits of the value: always another MAC.
    return ("B" if text[0] == "A" else "A") + text[1:]


def _respellings(text: str) -> list[str]:
    """Other spellings of ``text`` that a lenient base64 decoder maps to the same bytes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same = [
        text[:-1] + char
        for char in alphabet
        if char != text[-1]
        and base64.urlsafe_b64decode(text[:-1] + char + "==")
        == base64.urlsafe_b64decode(text + "==")
    ]
    return [*same, text[:3] + "!" + text[3:], text + "=="]


def test_tokens_have_one_spelling() -> None:
    # A 16-byte MAC is 22 characters; the last one carries 2 bits, so without a
    # canonical check 15 other last characters verify (CI once drew a "wrong MAC"
    # that ended in such a character and the forgery test failed).
    signer = Signer([NEW], id_key=ID_KEY)
    token = signer.unsubscribe_token("a@example.org")
    encoded, _, mac = token.partition(".")
    assert len(_respellings(mac)) > 2
    for variant in _respellings(mac):
        assert signer.verify_unsubscribe(f"{encoded}.{variant}") is None, variant
    signed = signer.sign("confirm", "a@example.org", 2**40)
    payload, expiry, mac = signed.split(".")
    assert signer.verify("confirm", signed, 0) == "a@example.org"
    for variant in _respellings(mac):
        assert signer.verify("confirm", f"{payload}.{expiry}.{variant}", 0) is None, variant
    for variant in _respellings(payload):
        assert signer.verify("confirm", f"{variant}.{expiry}.{mac}", 0) is None, variant


def test_rotation_accepts_tokens_signed_with_an_older_key() -> None:
    sid = subscriber_id(ID_KEY, "a@example.org")
    old_token = Signer([OLD], id_key=ID_KEY).unsubscribe_token("a@example.org")
    assert Signer([NEW, OLD], id_key=ID_KEY).verify_unsubscribe(old_token) == sid
    assert Signer([NEW]).verify_unsubscribe(old_token) is None
    new_token = Signer([NEW, OLD], id_key=ID_KEY).unsubscribe_token("a@example.org")
    assert new_token == Signer([NEW], id_key=ID_KEY).unsubscribe_token("a@example.org")
    assert new_token.partition(".")[0] == old_token.partition(".")[0]  # the id never rotates


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        Signer([b"short"])
    with pytest.raises(ValueError):
        Signer([])
    with pytest.raises(ValueError):
        Signer([NEW], id_key=b"short")


def test_unsubscribe_url_is_under_the_public_url() -> None:
    assert (
        unsubscribe_url("https://example.org/newsletter", "t.k")
        == "https://example.org/newsletter/unsubscribe?token=t.k"
    )


def test_page_links_carry_only_a_well_formed_language_tag() -> None:
    from statement_feeds.domain.tokens import preferences_url, unsubscribe_url

    base = "https://example.org/news"
    assert unsubscribe_url(base, "t.m", "pt-BR") == f"{base}/unsubscribe?token=t.m&lang=pt-BR"
    assert preferences_url(base + "/", "t.m", "ru") == f"{base}/preferences?token=t.m&lang=ru"
    for bad in ("", "ru&x=1", "ru ru", "r" * 36, "ру"):
        assert unsubscribe_url(base, "t.m", bad) == f"{base}/unsubscribe?token=t.m"


def test_the_macs_are_hmac_sha256_as_before() -> None:
    # Tokens in mail already sent must keep verifying, and a Message-ID is the same
    # whichever version planned it: the one-shot hmac.digest must give the bytes that
    # hmac.new(...).digest() gave, truncated to 16. Recomputed here independently.
    signer = Signer([NEW], id_key=ID_KEY)

    def mac(purpose: bytes, text: str) -> bytes:
        return hmac.new(NEW, purpose + text.encode(), "sha256").digest()[:16]

    message_id = signer.message_id(7, "Anna@Example.org", "example.org")
    expected = mac(b"statement-feeds/message-id\x00", "7\x00anna@example.org").hex()
    assert message_id == f"<7.{expected}@example.org>"
    token = signer.unsubscribe_token("анна@example.org")
    sid = subscriber_id(ID_KEY, "анна@example.org")
    raw = mac(b"statement-feeds/unsubscribe-id\x00", sid)
    assert token == f"{sid}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"
