from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statement_feeds.domain.verp import (
    MAX_LOCAL,
    BounceToken,
    VerpSigner,
    parse_bounce_address,
)

OLD, NEW = b"o" * 32, b"n" * 32
BOUNCES = parse_bounce_address("bounces@example.org")

emails = st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,12}\.(org|com|by)", fullmatch=True)
editions = st.integers(min_value=0, max_value=9_999_999_999)


@given(editions, emails)
def test_round_trip(edition: int, email: str) -> None:
    signer = VerpSigner([NEW])
    envelope = signer.envelope(BOUNCES, edition, email)
    token = BOUNCES.token_in(envelope)
    assert token is not None
    parsed = VerpSigner.parse(token)
    assert parsed == BounceToken(edition, parsed.mac if parsed else b"")
    assert parsed is not None and signer.matches(parsed, email)
    assert signer.matches(parsed, email.upper())  # every spelling of the address
    local = envelope.rpartition("@")[0]
    assert len(local) <= MAX_LOCAL
    assert local == local.lower() and all(c.isalnum() or c in "+-" for c in local)
    # Some MTAs change the case of the local part: it still maps to the delivery.
    upper = BOUNCES.token_in(envelope.upper())
    assert upper is not None and VerpSigner.parse(upper) == parsed


@given(editions, emails, emails)
def test_a_token_names_one_address(edition: int, email: str, other: str) -> None:
    signer = VerpSigner([NEW])
    token = VerpSigner.parse(signer.token(edition, email))
    assert token is not None
    assert signer.matches(token, other) == (other.lower() == email.lower())


@given(editions, emails, st.data())
def test_tampered_tokens_are_refused(edition: int, email: str, data: st.DataObject) -> None:
    signer = VerpSigner([NEW])
    text = signer.token(edition, email)
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz234567-0189"))
    forged = text[:position] + replacement + text[position + 1 :]
    if forged == text:
        return
    parsed = VerpSigner.parse(forged)
    assert parsed is None or not signer.matches(parsed, email)


def test_forged_edition_or_key_does_not_match() -> None:
    signer = VerpSigner([NEW])
    token = VerpSigner.parse(signer.token(7, "anna@example.org"))
    assert token is not None
    assert not signer.matches(BounceToken(8, token.mac), "anna@example.org")
    assert not VerpSigner([OLD]).matches(token, "anna@example.org")


def test_rotated_keys_still_verify_old_tokens() -> None:
    old_token = VerpSigner.parse(VerpSigner([OLD]).token(3, "anna@example.org"))
    assert old_token is not None
    assert VerpSigner([NEW, OLD]).matches(old_token, "anna@example.org")
    assert VerpSigner([NEW, OLD]).token(3, "anna@example.org") == VerpSigner([NEW]).token(
        3, "anna@example.org"
    )


@pytest.mark.parametrize(
    "text",
    ["", "7", "7-", "-abcdefghijklmnop", "07-abcdefghijklmnop", "7-abcdefghijklmno",
     "7-abcdefghijklmnopq", "7-abcdefghijklmno1", "7.abcdefghijklmnop", "x-abcdefghijklmnop",
     "12345678901-abcdefghijklmnop"],
)  # fmt: skip
def test_malformed_tokens_are_none(text: str) -> None:
    assert VerpSigner.parse(text) is None


def test_token_in_only_reads_our_addresses() -> None:
    assert BOUNCES.token_in("Bounces+7-abc@EXAMPLE.org") == "7-abc"
    assert BOUNCES.token_in("<bounces+7-abc@example.org>") == "7-abc"
    assert BOUNCES.token_in("bounces+7-abc@example.net") is None
    assert BOUNCES.token_in("other+7-abc@example.org") is None
    assert BOUNCES.token_in("bounces@example.org") is None
    assert BOUNCES.token_in("not an address") is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("bounces", "not an address"),
        ("bounces+x@example.org", "must not contain '\\+'"),
        ("b" * 40 + "@example.org", "too long"),
    ],
)
def test_bounce_address_is_checked(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_bounce_address(text)


def test_keys_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        VerpSigner([b"short"])
    with pytest.raises(ValueError):
        VerpSigner([])
    for edition in (-1, 10**10):  # the local part has room for 10 digits
        with pytest.raises(ValueError):
            VerpSigner([NEW]).token(edition, "anna@example.org")


def test_the_index_finds_the_address_of_a_token_under_any_key() -> None:
    signer = VerpSigner([NEW, OLD])
    emails = [f"user{i}@example.org" for i in range(50)]
    index = signer.index(4, emails)
    for key in (NEW, OLD):
        token = VerpSigner.parse(VerpSigner([key]).token(4, "User7@example.org"))
        assert token is not None and index[token.mac] == "user7@example.org"
    other_edition = VerpSigner.parse(signer.token(5, "user7@example.org"))
    assert other_edition is not None and other_edition.mac not in index
