from __future__ import annotations

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
    for forged in (f"{other}.{mac}", f"{encoded}.{mac[:-2]}AA", encoded, "", "!!.??", "a.b.c"):
        assert signer.verify_unsubscribe(forged) is None


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
