"""The aiosmtplib internals ``digests/smtp_internals.py`` relies on are still there.

These are not aiosmtplib's documented API, so an upgrade may change them without
notice. Each test names what it checks; a failure means: read the new aiosmtplib,
adapt ``smtp_internals.py`` (or drop the fast path), then update its docstring's list
of proven versions.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import aiosmtplib.email
import aiosmtplib.protocol
import pytest
from aiosmtplib import SMTP, SMTPStatus
from aiosmtplib.protocol import SMTPProtocol
from hypothesis import given
from hypothesis import strategies as st

from statement_feeds.digests import smtp_internals
from statement_feeds.domain.digest_message import CrlfMessage, DotFreeMessage, crlf_only, dot_free

P = inspect.Parameter
SRC = Path(__file__).resolve().parents[2] / "src" / "statement_feeds"


def _shape(function: Callable[..., Any]) -> list[tuple[str, Any, bool]]:
    """(name, kind, has a default) of each parameter: what a call site depends on."""
    params = inspect.signature(function).parameters.values()
    return [(p.name, p.kind, p.default is not P.empty) for p in params]


def _fail(what: str) -> str:
    return (
        f"aiosmtplib {aiosmtplib.__version__} changed {what}, which "
        "digests/smtp_internals.py relies on: adapt it before allowing this version"
    )


@pytest.mark.parametrize(
    ("name", "function", "expected"),
    [
        (
            "SMTP.execute_command",
            SMTP.execute_command,
            [("self", P.POSITIONAL_OR_KEYWORD, False), ("args", P.VAR_POSITIONAL, False),
             ("timeout", P.KEYWORD_ONLY, True)],
        ),
        (
            "SMTPProtocol.write",
            SMTPProtocol.write,
            [("self", P.POSITIONAL_OR_KEYWORD, False), ("data", P.POSITIONAL_OR_KEYWORD, False)],
        ),
        (
            "SMTPProtocol.read_response",
            SMTPProtocol.read_response,
            [("self", P.POSITIONAL_OR_KEYWORD, False), ("timeout", P.POSITIONAL_OR_KEYWORD, True)],
        ),
        (
            "aiosmtplib.protocol.normalize_message_line_endings",
            aiosmtplib.protocol.normalize_message_line_endings,
            [("message", P.POSITIONAL_OR_KEYWORD, False)],
        ),
        (
            "aiosmtplib.email.quote_address",
            aiosmtplib.email.quote_address,
            [("address", P.POSITIONAL_OR_KEYWORD, False)],
        ),
    ],
)  # fmt: skip
def test_signatures_are_unchanged(
    name: str, function: Callable[..., Any], expected: list[tuple[str, Any, bool]]
) -> None:
    assert _shape(function) == expected, _fail(f"the signature of {name}")


def test_the_coroutines_are_still_coroutines() -> None:
    for name, function in [
        ("SMTP.execute_command", SMTP.execute_command),
        ("SMTPProtocol.read_response", SMTPProtocol.read_response),
    ]:
        assert inspect.iscoroutinefunction(function), _fail(f"{name} (no longer async)")
    assert not inspect.iscoroutinefunction(SMTPProtocol.write), _fail("SMTPProtocol.write")


def test_the_client_attributes_are_there() -> None:
    client = SMTP()
    assert "protocol" in vars(client) and client.protocol is None, _fail("SMTP.protocol")
    # open_data lends the connection's transport to its own reply reader.
    assert "transport" in vars(client) and client.transport is None, _fail("SMTP.transport")
    needed = inspect.getattr_static(SMTP, "is_ehlo_or_helo_needed", None)
    assert isinstance(needed, property), _fail("SMTP.is_ehlo_or_helo_needed")
    assert client.is_ehlo_or_helo_needed is True, _fail("SMTP.is_ehlo_or_helo_needed")


def test_the_helpers_behave_as_before() -> None:
    normalize = aiosmtplib.protocol.normalize_message_line_endings
    # Every line ending becomes CRLF, and the message ends with one: data_payload
    # counts on both when it hands over anything that is not CRLF throughout.
    expected = b"a\r\nb\r\nc\r\nd\r\n"
    assert normalize(b"a\nb\rc\r\nd") == expected, _fail("line-ending normalisation")
    assert aiosmtplib.email.quote_address("a@example.org") == "<a@example.org>", _fail(
        "quote_address"
    )
    assert smtp_internals.quoted('"a b"@example.org') == b'<"a b"@example.org>', _fail(
        "quote_address (quoted local parts)"
    )


def test_the_reply_codes_are_there() -> None:
    codes = (SMTPStatus.completed, SMTPStatus.will_forward, SMTPStatus.start_input)
    assert codes == (250, 251, 354), _fail("SMTPStatus")


def test_the_exceptions_are_built_as_aiosmtplib_builds_them() -> None:
    sender = aiosmtplib.SMTPSenderRefused(550, "no", "s@example.org")
    assert (sender.code, sender.message, sender.sender) == (550, "no", "s@example.org")
    refused = aiosmtplib.SMTPRecipientRefused(550, "no", "r@example.org")
    assert (refused.code, refused.message, refused.recipient) == (550, "no", "r@example.org")
    data = aiosmtplib.SMTPDataError(554, "no")
    assert (data.code, data.message) == (554, "no")
    assert isinstance(data, aiosmtplib.SMTPResponseException), _fail("SMTPDataError")
    assert aiosmtplib.SMTPServerDisconnected("gone").message == "gone"


# What only smtp_internals.py may touch; anything else must go through it.
_INTERNAL = re.compile(
    r"execute_command|read_response|\.protocol\b|aiosmtplib\.protocol|aiosmtplib\.email"
    r"|normalize_message_line_endings|quote_address|is_ehlo_or_helo_needed|SMTPStatus"
)


def test_no_other_module_touches_them() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "smtp_internals.py" and _INTERNAL.search(path.read_text("utf-8"))
    ]
    assert offenders == [], f"aiosmtplib internals used outside smtp_internals.py: {offenders}"


@given(
    st.binary(max_size=40).map(
        lambda b: b.replace(b"a", b"\r").replace(b"b", b"\n").replace(b"c", b".")
    )
)
def test_the_payload_of_a_vouched_message_is_what_a_scan_gives(raw: bytes) -> None:
    # Any message, normalised to CRLF, is what a composer vouches for: the payload
    # must not depend on whether the scan was skipped.
    clean = aiosmtplib.protocol.normalize_message_line_endings(raw)
    assert smtp_internals.data_payload(CrlfMessage(clean)) == smtp_internals.data_payload(clean)
    if dot_free(clean):
        vouched = DotFreeMessage(clean)
        assert smtp_internals.data_payload(vouched) == smtp_internals.data_payload(clean)
    # Unvouched bytes are still normalised before they go out.
    payload = smtp_internals.data_payload(raw)
    assert crlf_only(payload) and payload.endswith(b"\r\n.\r\n")
