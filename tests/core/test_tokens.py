from __future__ import annotations

import base64

import pytest

from statement_feeds.core.tokens import Signer, unsubscribe_url

OLD, NEW = b"o" * 32, b"n" * 32


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
    signer = Signer([NEW])
    token = signer.unsubscribe_token("Анна@example.org")
    assert signer.verify_unsubscribe(token) == "анна@example.org"
    encoded, _, mac = token.partition(".")
    other = signer.unsubscribe_token("boris@example.org").partition(".")[0]
    for forged in (f"{other}.{mac}", f"{encoded}.{_flip(mac)}", encoded, "", "!!.??", "a.b.c"):
        assert signer.verify_unsubscribe(forged) is None


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
    signer = Signer([NEW])
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
    old_token = Signer([OLD]).unsubscribe_token("a@example.org")
    assert Signer([NEW, OLD]).verify_unsubscribe(old_token) == "a@example.org"
    assert Signer([NEW]).verify_unsubscribe(old_token) is None
    assert Signer([NEW, OLD]).unsubscribe_token("a@example.org") == Signer([NEW]).unsubscribe_token(
        "a@example.org"
    )


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        Signer([b"short"])
    with pytest.raises(ValueError):
        Signer([])


def test_unsubscribe_url_is_under_the_public_url() -> None:
    assert (
        unsubscribe_url("https://example.org/newsletter", "t.k")
        == "https://example.org/newsletter/unsubscribe?token=t.k"
    )
