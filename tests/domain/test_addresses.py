"""Addresses checked part by part, and every header value built from them."""

from __future__ import annotations

import email
import re
from email import headerregistry, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statement_feeds.domain.addresses import (
    Address,
    AddressError,
    NotAsciiError,
    canonical_email,
    clean_header_text,
    email_key,
    header_address,
    parse_address,
    to_header,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a@example.org", Address("a", "example.org")),
        ("  O'Neil+x=y@Sub.Example.ORG ", Address("O'Neil+x=y", "Sub.Example.ORG")),
        ("user@bücher.de", Address("user", "xn--bcher-kva.de")),
        ("User@BÜCHER.de", Address("User", "xn--bcher-kva.de")),  # UTS 46 maps case
        ("x@straße.de", Address("x", "xn--strae-oqa.de")),  # IDNA 2008: ß is kept
        ("x@例え.テスト", Address("x", "xn--r8jz45g.xn--zckzah")),
        ("x@xn--bcher-kva.de", Address("x", "xn--bcher-kva.de")),
    ],
)
def test_parsed_addresses_and_their_canonical_form(text: str, expected: Address) -> None:
    assert parse_address(text) == expected
    assert canonical_email(text) == expected.email


def test_an_idn_and_its_a_label_are_one_key() -> None:
    keys = {email_key(e) for e in ("user@bücher.de", "User@XN--BCHER-KVA.DE", " user@Bücher.de ")}
    assert keys == {"user@xn--bcher-kva.de"}
    assert email_key("not an address ü") == "not an address ü"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("=?utf-8?q?attacker=40evil.org=2C_anna?=@example.org", "encoded word"),
        ("=?utf-8?q?a=0D=0ABcc=3A_x=40evil.org?=@example.org", "encoded word"),
        ("a=?b@example.org", "encoded word"),
        ("a@example.org\r\nBcc: x@evil.org", "control characters"),
        ("a\u2028b@example.org", "control characters"),
        ("a@example.org, b@example.org", "one plain address"),
        ("Eve <eve@evil.org>", "one plain address"),
        ('"quoted"@example.org', "one plain address"),
        ("a@b@example.org", "exactly one @"),
        ("a..b@example.org", "not a valid mailbox name"),
        ("x" * 65 + "@example.org", "not a valid mailbox name"),
        ("a@-bad.org", "not a valid host name"),
        ("a@localhost", "not a valid host name"),
        ("a@1.2.3.4", "not an IP address"),
        ("a@bü_cher.de", "not a valid internationalised host name"),
        ("a@" + "ü" * 70 + ".de", "not a valid internationalised host name"),
        ("a@" + ".".join(["bücher" * 6] * 6) + ".de", "too long"),  # 253 as A-labels
        ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 61, "254"),
        ("", "empty"),
    ],
)
def test_refused_addresses_say_why(text: str, why: str) -> None:
    with pytest.raises(AddressError, match=why):
        parse_address(text)
    with pytest.raises(AddressError, match=why):
        canonical_email(text)


def test_a_non_ascii_local_part_is_refused_saying_why_and_what_to_do() -> None:
    with pytest.raises(NotAsciiError) as refused:
        parse_address("пётр@example.org")
    assert "SMTPUTF8" in str(refused.value) and "ASCII address" in str(refused.value)


def test_header_text_is_one_line() -> None:
    assert clean_header_text(" a\r\nb\u2028c\x85d\te  ") == "a b c d e"


def _header_via_email_package(address: Address) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["To"] = header_address(address)
    return message.as_bytes()


def _header_by_hand(address: Address, name: str) -> bytes:
    return b"To: " + to_header(address, name) + b"\r\n\r\n"


def _display_name(raw: bytes) -> str:
    """The display name of a ``To`` header as RFC 2047 decodes it.

    (Python 3.11's address parser keeps the folding space between two encoded words,
    which RFC 2047 6.2 says to drop: it cannot judge names longer than one word.)
    """
    value = raw.split(b"\r\n\r\n")[0].removeprefix(b"To: ").decode("ascii")
    name = value.replace("\r\n ", " ").rpartition(" <")[0]
    if name.startswith('"'):
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return str(make_header(decode_header(name)))


def _only_recipient(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert "Bcc" not in message and "Cc" not in message
    found = getaddresses(message.get_all("To") or [])
    assert len(found) == 1, found
    return found[0]


_LOCAL_CHARS = st.text(alphabet="abcXYZ09!#$%&'*+/=?^_`{|}~-.", min_size=1, max_size=20)
_NAMES = st.lists(
    st.sampled_from([*'aZ <>,;:"\\@()[]=?._\r\n\t\u2028\x85ёЖ€', "=?utf-8?q?", "?=", "=40"]),
    max_size=30,
).map("".join)


@given(local=_LOCAL_CHARS, name=_NAMES)
def test_any_accepted_address_and_any_name_make_exactly_one_recipient(
    local: str, name: str
) -> None:
    try:
        address = parse_address(f"{local}@example.org")
    except AddressError:
        return
    assert _only_recipient(_header_via_email_package(address)) == ("", address.email)
    raw = _header_by_hand(address, name)
    assert _only_recipient(raw)[1] == address.email
    assert _display_name(raw) == clean_header_text(name)[:200]


def test_the_email_package_would_decode_an_encoded_word_in_a_display_name() -> None:
    # Why header_address takes no display name: folding parses the Address's text again.
    message = EmailMessage(policy=policy.SMTP)
    message["To"] = headerregistry.Address("=?utf-8?q?a=2C_b?=", "anna", "example.org")
    assert message.as_bytes() == b"To: a, b <anna@example.org>\r\n\r\n"
    raw = _header_by_hand(Address("anna", "example.org"), "=?utf-8?q?a=2C_b?=")
    assert _only_recipient(raw) == ("=?utf-8?q?a=2C_b?=", "anna@example.org")
