"""flufl.bounce on the samples in bounce_samples/ (the releases it is proven on: pyproject).

Each sample is classified as the README table beside it says, the failed recipient is
what the detectors read, and where the VERP address or our Message-ID is to be found.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statement_feeds.digests.bounce_classify import classify

SAMPLES = Path(__file__).parent / "bounce_samples"
VERP = "bounces+2-abcdefghijklmnop@example.org"
MESSAGE_ID = "<2.0123456789abcdef@example.org>"


def sample(name: str) -> bytes:
    raw = (SAMPLES / name).read_bytes()
    for placeholder, value in (
        (b"@@VERP@@", VERP),
        (b"@@RCPT@@", "anna@example.com"),
        (b"@@MESSAGE_ID@@", MESSAGE_ID),
    ):
        raw = raw.replace(placeholder, value.encode())
    return raw


@pytest.mark.parametrize(
    ("name", "kind", "detail", "verp", "message_id"),
    [
        ("postfix.eml", "permanent", "550 5.1.1 <anna@example.com>: Recipient", True, True),
        ("exim.eml", "permanent", "permanent failure", True, False),
        ("gmail.eml", "permanent", "550-5.1.1 The email account", True, True),
        ("outlook.eml", "permanent", "550 5.1.10 RESOLVER.ADR", False, True),
        ("temporary.eml", "temporary", "452 4.2.2 Mailbox full", True, True),
        ("arf.eml", "complaint", "feedback report: abuse", True, True),
        ("out_of_office.eml", "ignored", "automatic reply", True, False),
        ("garbage.eml", "unrecognised", "the bounce detectors failed", True, False),
    ],
)
def test_each_sample_is_classified(
    name: str, kind: str, detail: str, verp: bool, message_id: bool
) -> None:
    found = classify(sample(name))
    assert found.kind == kind, found
    assert found.detail.startswith(detail), found.detail
    assert (VERP in found.recipients) == verp
    assert (MESSAGE_ID in found.message_ids) == message_id
    if kind in ("permanent", "temporary"):
        assert found.detected == ("anna@example.com",)


def test_a_not_spam_report_is_no_complaint() -> None:
    raw = sample("arf.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert classify(raw).kind == "ignored"


def test_a_report_the_detectors_cannot_read_is_kept_not_ignored() -> None:
    """Auto-submitted like an out-of-office, but a bounce of some kind: for a person."""
    unreadable = sample("postfix.eml").replace(b"Action: failed", b"Action: relayed")
    found = classify(unreadable)
    assert found.kind == "unrecognised" and "neither a bounce" in found.detail
    daemon = b"From: MAILER-DAEMON@mx.example.net\nAuto-Submitted: auto-replied\n\nSorry.\n"
    assert classify(daemon).kind == "unrecognised"


def test_a_plain_message_is_unrecognised() -> None:
    raw = b"From: someone@example.com\nTo: " + VERP.encode() + b"\nSubject: hi\n\nHello.\n"
    found = classify(raw)
    assert found.kind == "unrecognised" and found.recipients == (VERP,)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_classify_never_raises_on_any_bytes(raw: bytes) -> None:
    found = classify(raw)
    assert found.kind in ("permanent", "temporary", "complaint", "ignored", "unrecognised")


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=200))
def test_classify_never_raises_on_a_cut_sample(start: int, length: int) -> None:
    raw = sample("postfix.eml")
    start %= len(raw)
    classify(raw[:start] + raw[start + length :])  # a part of it lost: no exception
