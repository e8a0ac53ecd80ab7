"""MessageTemplate vouches for CRLF line ends only when every piece it joined has them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from statement_feeds.domain.digest_message import (
    CrlfMessage,
    DotFreeMessage,
    Line,
    Markers,
    MessageTemplate,
    crlf_only,
    dot_free,
)

MARKERS = Markers.for_bundle("0" * 40)
# Bytes rich in line-end characters, so bare CR and LF come up often.
CHUNKS = st.binary(max_size=12).map(lambda b: b.replace(b"a", b"\r").replace(b"b", b"\n"))
CHUNKS = st.one_of(CHUNKS, CHUNKS.map(lambda b: b.replace(b"\x00", b".")))
TEXT = st.text(alphabet=st.sampled_from("ab .\r\n=é"), max_size=20)


def template(pieces: list[bytes | int | Line]) -> MessageTemplate:
    return MessageTemplate(pieces, MARKERS)


def fill(t: MessageTemplate, to: bytes, unsubscribe: bytes, greeting: str, url: str) -> bytes:
    return t.fill(to, "<id@example.org>", unsubscribe, greeting, url)


@given(
    st.lists(
        st.one_of(CHUNKS, st.sampled_from([0, 1, 2]), st.builds(Line, TEXT, st.booleans())),
        max_size=8,
    ),
    CHUNKS,
    CHUNKS,
    TEXT,
    TEXT,
)
def test_a_vouched_message_has_only_crlf_pairs(
    pieces: list[bytes | int | Line], to: bytes, unsubscribe: bytes, greeting: str, url: str
) -> None:
    message = fill(template(pieces), to, unsubscribe, greeting, url)
    if isinstance(message, CrlfMessage):
        assert crlf_only(bytes(message))
    if isinstance(message, DotFreeMessage):  # no line, the first included, starts with "."
        assert not any(line.startswith(b".") for line in bytes(message).split(b"\r\n"))


def test_a_clean_template_is_vouched_for() -> None:
    pieces: list[bytes | int | Line] = [
        b"To: ",
        0,
        b"\r\nMessage-ID: ",
        1,
        b"\r\n\r\n",
        Line(f"{MARKERS.greeting}\n", False),
        b"body\r\n",
    ]
    message = fill(template(pieces), b"a@example.org", b"<https://x/>", "Hello,", "")
    assert isinstance(message, CrlfMessage)
    assert message.startswith(b"To: a@example.org\r\nMessage-ID: <id@example.org>\r\n")


def test_one_bare_line_end_anywhere_is_not_vouched_for() -> None:
    clean: list[bytes | int | Line] = [b"To: ", 0, b"\r\n\r\nbody\r\n"]
    assert isinstance(fill(template(clean), b"a@example.org", b"", "", ""), CrlfMessage)
    # In a piece of the bundle, or in one subscriber's header value:
    bare_piece = [*clean, b"tail\n"]
    assert not isinstance(fill(template(bare_piece), b"a@example.org", b"", "", ""), CrlfMessage)
    bare_value = fill(template(clean), b"a@example.org\rBcc: x@y", b"", "", "")
    assert not isinstance(bare_value, CrlfMessage)
    # A CR ending one piece and an LF starting the next make a pair neither vouches for.
    split_pair: list[bytes | int | Line] = [b"To: x\r", b"\nbody\r\n"]
    message = template(split_pair).fill(b"", "<id@example.org>", b"", "", "")
    assert message == b"To: x\r\nbody\r\n" and not isinstance(message, CrlfMessage)


def test_a_line_starting_with_a_dot_anywhere_needs_stuffing() -> None:
    clean: list[bytes | int | Line] = [b"To: ", 0, b"\r\n\r\nbody\r\n"]
    assert isinstance(fill(template(clean), b"a@example.org", b"", "", ""), DotFreeMessage)
    for pieces in ([*clean, b".tail\r\n"], [*clean, b"x\r\n.y\r\n"]):
        message = fill(template(pieces), b"a@example.org", b"", "", "")
        assert type(message) is CrlfMessage
    # A header value or a subscriber's body line:
    folded = fill(template(clean), b"a@example.org,\r\n.b@example.org", b"", "", "")
    assert type(folded) is CrlfMessage
    greeted = [*clean, Line(f"{MARKERS.greeting}\n", False)]
    assert type(fill(template(greeted), b"a@example.org", b"", ".Hi", "")) is CrlfMessage


def test_crlf_only() -> None:
    assert crlf_only(b"") and crlf_only(b"a\r\nb\r\n")
    assert not crlf_only(b"a\nb") and not crlf_only(b"a\rb") and not crlf_only(b"a\n\rb")


def test_dot_free() -> None:
    assert dot_free(b"") and dot_free(b"a.b\r\nc.\r\n")
    assert not dot_free(b".a") and not dot_free(b"a\r\n.b")
