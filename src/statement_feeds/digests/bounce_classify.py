"""What a message returned to the bounce address is, and where its VERP token may be.

Classification is ``flufl.bounce``'s (Mailman's detectors: RFC 3464 DSNs first, then
the formats of Exim, Postfix, Exchange, qmail, Yahoo and others): ``all_failures``
gives the temporary and the permanent failures. A feedback-loop complaint (RFC 5965,
``multipart/report; report-type=feedback-report``) is recognised here first, since
it is no failure at all. An automatic reply (an out-of-office, RFC 3834
``Auto-Submitted``) goes to the envelope sender too: it is recognised and ignored,
unless it looks like a report the detectors could not read (then it is kept).

Which address failed is *not* taken from the detectors' findings (a DSN's text can
say anything): it comes from the VERP token in the address the report was sent to,
or from the Message-ID of the returned message (``bounces`` resolves both).
"""

from __future__ import annotations

import email
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

__all__ = ["Classified", "classify"]

# Where the address a report was delivered to can be read, most exact first: the
# headers the delivering MTA adds (Postfix: Delivered-To, X-Original-To; Exim:
# Envelope-To), then the report's To.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# Feedback types that are complaints; "not-spam" is the opposite (RFC 6650).
_COMPLAINTS = frozenset({"abuse", "fraud", "virus", "other"})
_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond")

# It logs every detector it runs, and a traceback when one trips over a malformed
# message: that failure is reported by classify itself ("unrecognised").
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class Classified:
    """One returned message, understood as far as it can be without the state."""

    kind: str  # "permanent" | "temporary" | "complaint" | "ignored" | "unrecognised"
    detail: str  # DSN status and diagnostic, feedback type, or why not recognised
    recipients: tuple[str, ...]  # addresses it was delivered to (VERP tokens are here)
    message_ids: tuple[str, ...]  # Message-IDs of the returned (original) message
    detected: tuple[str, ...] = ()  # what the detectors read as the failed recipients


def classify(raw: bytes) -> Classified:
    """Classify one message as it lies in the mailbox; never raises on bad input."""
    message = email.message_from_bytes(raw)
    returned = list(_returned_headers(message))
    # The returned message's Return-Path is its VERP address, as its receiver saw it:
    # where a feedback loop, which reports to an address of its own, keeps the token.
    found = (*_recipients(message, names=_RECIPIENT_HEADERS), *_recipients(*returned))
    recipients = tuple(dict.fromkeys(found))
    message_ids = tuple(str(h["Message-ID"]).strip() for h in returned if h["Message-ID"])
    kind, detail, detected = _kind(message)
    return Classified(kind, detail, recipients, message_ids, detected)


def _kind(message: Message) -> tuple[str, str, tuple[str, ...]]:
    feedback = _feedback_type(message)
    if feedback is not None:
        if feedback in _COMPLAINTS:
            return "complaint", f"feedback report: {feedback}", ()
        return "ignored", f"feedback report: {feedback or 'no type'}", ()
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector tripped over a malformed message
        return "unrecognised", f"the bounce detectors failed: {type(exc).__name__}", ()
    if permanent or temporary:
        found = tuple(sorted(a.decode("ascii", "replace") for a in permanent | temporary))
        kind = "permanent" if permanent else "temporary"
        return kind, _dsn_detail(message) or f"{kind} failure", found
    if _is_auto_reply(message) and not _looks_like_a_bounce(message):
        return "ignored", "automatic reply, not a bounce", ()
    return "unrecognised", "neither a bounce nor a feedback report", ()


def _feedback_type(message: Message) -> str | None:
    """The Feedback-Type of an RFC 5965 report ("" when it has none), else None."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "feedback-report":
        return None
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            return _fields(part).get("feedback-type", "").lower()
    return ""


def _fields(part: Message) -> dict[str, str]:
    """The header fields of a message/feedback-report or delivery-status part."""
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [email.message_from_string(str(payload))]
    fields: dict[str, str] = {}
    for block in blocks:
        if isinstance(block, Message):
            for name, value in block.items():
                fields.setdefault(name.lower(), " ".join(str(value).split()))
    return fields


def _dsn_detail(message: Message) -> str:
    """The first failed recipient's Status and Diagnostic-Code, as a DSN gives them."""
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            fields = _fields(part)
            status = fields.get("status", "")
            diagnostic = fields.get("diagnostic-code", "").partition(";")[2].strip()
            return diagnostic if status in diagnostic else f"{status} {diagnostic}".strip()
    return ""


def _is_auto_reply(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (
        not submitted.startswith("no")
        or precedence == "auto_reply"
        or any(message.get(name) for name in _AUTO_REPLY_HEADERS)
    )


def _looks_like_a_bounce(message: Message) -> bool:
    """A report or a mailer daemon's message that the detectors could not read: kept for a
    person to look at, not ignored as an out-of-office (both are auto-submitted)."""
    sender = parseaddr(str(message.get("From", "")))[1].partition("@")[0].lower()
    return (
        message.get_content_type() == "multipart/report"
        or sender in ("mailer-daemon", "postmaster")
        or message.get("X-Failed-Recipients") is not None
    )


def _recipients(*messages: Message, names: tuple[str, ...] = ("Return-Path",)) -> Iterator[str]:
    for message in messages:
        for name in names:
            values = [str(value) for value in message.get_all(name, [])]
            for _, address in getaddresses(values):
                if address:
                    yield address


def _returned_headers(message: Message) -> Iterator[Message]:
    """The headers of the message a report returns or quotes (ours, if it is a bounce)."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            text = part.get_payload(decode=True) or b""
            headers = email.message_from_bytes(bytes(text))
        else:
            continue
        if isinstance(headers, Message):
            yield headers
