"""Digest composition: the fast byte-template path must equal a straight render."""

from __future__ import annotations

import email
import re
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from zoneinfo import ZoneInfo

import jinja2
import pytest

from statement_feeds.domain.addresses import clean_header_text
from statement_feeds.domain.digest import Composer, DigestSettings, template_environment
from statement_feeds.domain.digest_message import CrlfMessage, crlf_only
from statement_feeds.domain.statements import Statement
from statement_feeds.domain.tokens import Signer, subscriber_id
from statement_feeds.locales import load_translations
from statement_feeds.state.api import Delivery
from statement_feeds.template_files import DEFAULTS

TEMPLATES = DEFAULTS
ID_KEY = b"i" * 32
SIGNER = Signer([b"k" * 32], id_key=ID_KEY)
SETTINGS = DigestSettings(
    sender="Socialism From Below <statements@example.org>",
    site_title="Socialism From Below",
    site_url="https://example.org/",
    public_url="https://example.org/newsletter/",
    timezone=ZoneInfo("Europe/London"),
    unsubscribe_mailto="unsubscribe@example.org",
    language_titles={"ru": "Социализм снизу"},
)


def statement(key: str, lang: str, title: str, summary: str, day: int) -> Statement:
    published = datetime(2020, 8, day, 9, 30, tzinfo=UTC)
    return Statement(
        source=f"{key}.{lang}.md",
        id=f"urn:test:{key}:{lang}",
        lang=lang,
        translation_key=key,
        title=title,
        published=published,
        updated=published,
        url=f"https://example.org/{lang}/{key}/",
        summary=summary,
        body=summary,
        author="IST",
        draft=False,
        digest=f"{key}{lang}",
    )


STATEMENTS = [
    statement("war", "en", "No to war & <occupation>", "First paragraph.\n\nSecond one…", 26),
    statement("strike", "en", "Solidarity with the strike", "Workers walked out " * 30, 20),
    statement("war", "ru", "Нет войне", "Первый абзац заявления.\n\nВторой абзац…", 26),
    statement("strike", "ru", "Солидарность с забастовкой", "Рабочие вышли " * 40, 20),
    statement("evil", "en", "Title\r\nBcc: x@y", "Injected\r\nBcc: z@y", 21),
]
BY_ID = {s.id: s for s in STATEMENTS}
EN = (STATEMENTS[0].id, STATEMENTS[1].id)
RU = (STATEMENTS[2].id, STATEMENTS[3].id)


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(
        template_environment(jinja2.FileSystemLoader(str(TEMPLATES))),
        SETTINGS,
        translations=load_translations("en"),
        signer=SIGNER,
        statements=BY_ID,
        date=datetime(2020, 9, 1, 7, 0, tzinfo=UTC),
    )


def delivery(email_address: str, name: str, lang: str, ids: tuple[str, ...]) -> Delivery:
    return Delivery(
        edition_id=3,
        email=email_address,
        name=name,
        lang=lang,
        statement_ids=ids,
        message_id=SIGNER.message_id(3, email_address, "example.org"),
        attempts=1,
        first_attempt_at=None,
    )


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects, message.defects
    return message


def bodies(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    # The wire format is CRLF; the parser keeps it in decoded QP text. Templates use LF.
    return tuple(p.get_content().replace("\r\n", "\n") for p in (text, html))


NAMES = [
    "",
    "Anna",
    "Анна Петрова-Водкина, дочь Ивана Сергеевича " * 3,
    'Bob "the" <b>&amp;',
    "Zoë",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("lang", "ids"), [("en", EN), ("ru", RU)])
def test_fast_path_equals_a_straight_render(
    composer: Composer, name: str, lang: str, ids: tuple[str, ...]
) -> None:
    target = delivery("anna@example.org", name, lang, ids)
    text, html = bodies(parse(composer(target)))
    expected = composer.render(
        lang,
        [BY_ID[i] for i in ids],
        composer.greeting(lang, name),
        composer.unsubscribe_link(target.email, lang),
        composer.preferences_link(target.email, lang),
    )
    assert (text, html) == expected


@pytest.mark.parametrize("name", [*NAMES, "Eve\r\nBcc: x@y", "Mallory\rX"])
def test_every_composed_message_vouches_for_its_line_ends(composer: Composer, name: str) -> None:
    # The messenger skips its own scan for these (smtp_internals.data_payload).
    ids = (STATEMENTS[4].id, *EN)  # a title and a summary with CRLF in them
    message = composer(delivery("anna@example.org", name, "en", ids))
    assert isinstance(message, CrlfMessage) and crlf_only(bytes(message))


def test_multipart_structure_and_every_item_in_both_parts(composer: Composer) -> None:
    message = parse(composer(delivery("boris@example.org", "Борис", "ru", RU)))
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = bodies(message)
    assert "Здравствуйте, Борис!" in text and "Здравствуйте, Борис!" in html
    assert "2 новых заявления" in text and "2 новых заявления" in html
    for item in (BY_ID[i] for i in RU):
        for body in (text, html):
            assert item.title in body
            assert item.url in body
            assert "Полный текст заявления" in body
    assert "26 августа 2020" in text and "20 августа 2020" in html
    assert "Первый абзац заявления." in text and '<p style="margin:0 0 12px;">Первый' in html


def test_headers(composer: Composer) -> None:
    target = delivery("boris@example.org", "Борис Иванов", "ru", RU)
    message = parse(composer(target))
    assert message["From"] == SETTINGS.sender
    assert message["To"] == "Борис Иванов <boris@example.org>"
    assert message["To"].addresses[0].addr_spec == "boris@example.org"
    assert message["Subject"] == "Социализм снизу: 2 новых заявления"
    assert message["Date"] == "Tue, 01 Sep 2020 07:00:00 +0000"
    assert message["Message-ID"] == target.message_id
    assert message["List-Id"] == "Socialism From Below <statements.example.org>"
    assert message["MIME-Version"] == "1.0"
    assert message["Content-Language"] == "ru"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    token = https.rsplit("token=", 1)[1]
    assert https.startswith("https://example.org/newsletter/unsubscribe?token=")
    assert SIGNER.verify_unsubscribe(token) == subscriber_id(ID_KEY, "boris@example.org")
    assert mailto.startswith("mailto:unsubscribe@example.org?subject=unsubscribe")
    assert "boris" not in str(message["List-Unsubscribe"])  # only an opaque id
    text, html = bodies(message)
    assert https in text and https in html


def test_each_message_names_only_its_own_recipient(composer: Composer) -> None:
    people = [f"person{i}@example.net" for i in range(5)]
    raws = {p: composer(delivery(p, f"Person {i}", "en", EN)) for i, p in enumerate(people)}
    for person, raw in raws.items():
        message = parse(raw)
        decoded = raw.decode("ascii") + "".join(bodies(message))
        assert message.get_all("To") == [f"Person {people.index(person)} <{person}>"]
        for other in people:
            if other != person:
                assert other not in decoded
                token = SIGNER.unsubscribe_token(other)
                assert token not in decoded
        assert "Cc" not in message and "Bcc" not in message


def test_header_injection_through_titles_and_names_is_inert(composer: Composer) -> None:
    evil = delivery("c@example.org", "Eve\r\nBcc: spy@example.com", "en", (STATEMENTS[4].id,))
    raw = composer(evil)
    message = parse(raw)
    assert "Bcc" not in message and message.get_all("To") is not None
    assert len(message.get_all("To") or []) == 1
    assert message["To"].addresses[0].addr_spec == "c@example.org"
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc" not in header_block
    assert all(
        line.startswith((b" ", b"\t")) or b":" in line for line in header_block.split(b"\r\n")
    )


def test_html_is_escaped(composer: Composer) -> None:
    _, html = bodies(parse(composer(delivery("d@example.org", "<b>x</b>", "en", EN))))
    assert "No to war &amp; &lt;occupation&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html


def test_output_is_reproducible_and_lines_are_short(composer: Composer) -> None:
    target = delivery("e@example.org", "Ёжик", "ru", RU)
    first = composer(target)
    fresh = Composer(
        template_environment(jinja2.FileSystemLoader(str(TEMPLATES))),
        SETTINGS,
        translations=load_translations("en"),
        signer=SIGNER,
        statements=BY_ID,
        date=datetime(2020, 9, 1, 7, 0, tzinfo=UTC),
    )
    assert fresh(target) == first
    assert first.isascii()  # 7bit on the wire: no 8BITMIME/SMTPUTF8 needed
    assert max(len(line) for line in first.split(b"\r\n")) <= 998
    assert b"\n" not in first.replace(b"\r\n", b"")


def test_a_non_ascii_address_is_refused(composer: Composer) -> None:
    with pytest.raises(ValueError):
        composer(delivery("пётр@example.org", "", "en", EN))
    with pytest.raises(ValueError):
        composer(replace(delivery("a@example.org", "", "en", EN), message_id="<x>\r\nBcc: y"))


def test_unknown_language_falls_back_to_english(composer: Composer) -> None:
    message = parse(composer(delivery("f@example.org", "", "xx", EN)))
    text, _ = bodies(message)
    assert message["Subject"] == "Socialism From Below: 2 new statements"
    assert text.startswith("Socialism From Below\n\nHello,\n")


def test_preview(composer: Composer) -> None:
    preview = composer.preview("ru", [BY_ID[i] for i in RU], "reader@example.org", "Читатель")
    message = parse(preview.eml)
    assert bodies(message) == (preview.text, preview.html)
    assert preview.html.startswith("<!DOCTYPE html>")
    assert "Здравствуйте, Читатель!" in preview.text


HOSTILE_NAMES = [
    "=?utf-8?q?attacker=40evil.org=2C_anna?=",  # an encoded word decoding to an address list
    "=?utf-8?q?a=0D=0ABcc=3A_x=40evil.org?=",  # ... to a CR LF and a header
    "Eve <eve@evil.org>, Bob",
    'Quote " and \\ backslash',
    "Ann\u2028Bcc: x@evil.org",
    "Ann\x85Cc: x@evil.org",
    "Жанна =?utf-8?b?QEBA?= <z@evil.org>",
    "x" * 300,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_display_name_stays_one_display_name(composer: Composer, name: str) -> None:
    raw = composer(delivery("anna@example.org", name, "en", EN))
    message = parse(raw)
    assert getaddresses(message.get_all("To") or []) == [
        (clean_header_text(name)[:200], "anna@example.org")
    ]
    assert "Cc" not in message and "Bcc" not in message
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert all(line.startswith(b" ") or b": " in line for line in header_block.split(b"\r\n"))


@pytest.mark.parametrize(
    "address",
    [
        "=?utf-8?q?attacker=40evil.org=2C_anna?=@example.org",
        "=?utf-8?q?a=0D=0ABcc=3A_x=40evil.org?=@example.org",
        "a@example.org, b@evil.org",
        "Eve <eve@evil.org>",
        "a@example.org\r\nBcc: x@evil.org",
        "a\u2028b@example.org",
    ],
)
def test_a_hostile_address_from_the_ledger_is_refused(composer: Composer, address: str) -> None:
    # Planning only records checked addresses; this guards rows from older versions.
    with pytest.raises(ValueError, match="cannot address"):
        composer(delivery(address, "", "en", EN))


def test_an_idn_address_is_addressed_by_its_a_label(composer: Composer) -> None:
    message = parse(composer(delivery("Jurgen@xn--bcher-kva.de", "Jürgen", "en", EN)))
    assert getaddresses(message.get_all("To") or []) == [("Jürgen", "Jurgen@xn--bcher-kva.de")]
    # A U-label row (written by an older version) is refused, not sent: its envelope
    # recipient would not be ASCII either. Planning now records the A-label.
    with pytest.raises(ValueError, match=r"send to Jurgen@xn--bcher-kva\.de"):
        composer(delivery("Jurgen@bücher.de", "", "en", EN))


# -- the subscriber's language, everywhere (issue 14) -----------------------------------------


def _composer_with_feeds(lang: str = "en") -> Composer:
    return Composer(
        template_environment(jinja2.FileSystemLoader(str(TEMPLATES))),
        replace(SETTINGS, feeds_url="https://example.org/feeds/"),
        translations=load_translations(lang),
        signer=SIGNER,
        statements=BY_ID,
        date=datetime(2020, 9, 1, 7, 0, tzinfo=UTC),
    )


def test_site_name_preferences_link_and_feed_line_in_the_subscribers_language() -> None:
    composer = _composer_with_feeds()
    text, html = bodies(parse(composer(delivery("r@example.org", "", "ru", RU))))
    token = SIGNER.unsubscribe_token("r@example.org")
    prefs = f"https://example.org/newsletter/preferences?token={token}&lang=ru"
    unsub = f"https://example.org/newsletter/unsubscribe?token={token}&lang=ru"
    assert text.startswith("Социализм снизу\n\n")
    assert f"Изменить настройки: {prefs}\nОтписаться: {unsub}\n" in text
    assert "https://example.org/feeds/ru.atom" in text.split("-- \n")[1]
    assert html.index(">Социализм снизу</a>") < html.index("Здравствуйте")
    amp = prefs.replace("&", "&amp;")
    assert f'<a href="{amp}"' in html and ">Изменить настройки</a> · <a href=" in html
    assert '<a href="https://example.org/feeds/ru.atom"' in html
    # The header keeps the bare one-click link: mail clients POST to it.
    assert "lang=" not in str(
        parse(composer(delivery("r@example.org", "", "ru", RU)))["List-Unsubscribe"]
    )


def test_no_feed_line_without_a_feeds_url(composer: Composer) -> None:
    text, html = bodies(parse(composer(delivery("r@example.org", "", "en", EN))))
    assert ".atom" not in text and ".atom" not in html
    assert "Change preferences: https://example.org/newsletter/preferences?token=" in text


def test_an_item_in_another_language_says_so_in_the_digests_language() -> None:
    composer = _composer_with_feeds()
    mixed = (RU[0], EN[1])
    text, html = bodies(parse(composer(delivery("r@example.org", "", "ru", mixed))))
    assert "Solidarity with the strike (английский)\n" in text
    assert "Нет войне\n" in text  # its own language: no note
    assert ">(английский)</span></h2>" in html and "(русский)" not in html
    text, _ = bodies(parse(composer(delivery("r@example.org", "", "de", mixed))))
    assert "Нет войне (Russisch)\n" in text and "Solidarity with the strike (Englisch)\n" in text


def test_french_punctuation_follows_the_locale() -> None:
    composer = _composer_with_feeds()
    text, _ = bodies(parse(composer(delivery("f@example.org", "", "fr", EN))))
    assert "Déclaration complète\u00a0: https://example.org/en/war/" in text
    assert "Se désabonner\u00a0: https://" in text
    assert "lecteur de flux\u00a0?" in text
    english, _ = bodies(parse(composer(delivery("e@example.org", "", "en", EN))))
    assert "Full statement: https://example.org/en/war/" in english


def test_links_in_an_excerpt_are_links_in_html_and_urls_in_text() -> None:
    from statement_feeds.domain.excerpts import excerpt

    summary = excerpt(
        "Details on [our site](https://example.org/a?b=1&c=2).\n\n[bad](javascript:x()) end.", 50
    )
    linked = replace(STATEMENTS[0], id="urn:test:linked", summary=summary, digest="linked")
    composer = Composer(
        template_environment(jinja2.FileSystemLoader(str(TEMPLATES))),
        SETTINGS,
        translations=load_translations("en"),
        signer=SIGNER,
        statements={linked.id: linked},
        date=datetime(2020, 9, 1, 7, 0, tzinfo=UTC),
    )
    text, html = bodies(parse(composer(delivery("l@example.org", "", "en", (linked.id,)))))
    assert "Details on our site <https://example.org/a?b=1&c=2>.\n\nbad end.\n" in text
    assert (
        '<p style="margin:0 0 12px;">Details on <a href="https://example.org/a?b=1&amp;c=2"'
        ' rel="noopener noreferrer">our site</a>.</p>'
    ) in html
    assert "javascript" not in html and "javascript" not in text and "\ue000" not in text
