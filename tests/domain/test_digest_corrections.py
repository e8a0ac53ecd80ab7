"""The "Corrected" section of a digest: rendered, localised, in both parts (issue 14)."""

from __future__ import annotations

import dataclasses
import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pytest

from statement_feeds.domain.digest import Composer, DigestSettings, template_environment
from statement_feeds.domain.statements import Statement
from statement_feeds.domain.tokens import Signer
from statement_feeds.locales import load_translations
from statement_feeds.state.api import Delivery
from statement_feeds.template_files import DEFAULTS

SIGNER = Signer([b"k" * 32], id_key=b"i" * 32)
SETTINGS = DigestSettings(
    sender="Site <statements@example.org>",
    site_title="Socialism From Below",
    site_url="https://example.org/",
    public_url="https://example.org/newsletter/",
    timezone=ZoneInfo("Europe/London"),
    language_titles={"ru": "Социализм снизу"},
)


def statement(key: str, lang: str, title: str, corrected: datetime | None = None) -> Statement:
    published = datetime(2024, 6, 3, 9, 30, tzinfo=UTC)
    return Statement(
        source=f"{key}.{lang}.md",
        id=f"urn:test:{key}:{lang}",
        lang=lang,
        translation_key=key,
        title=title,
        published=published,
        updated=corrected or published,
        url=f"https://example.org/{lang}/{key}/",
        summary=f"{title}: first paragraph.\n\nSecond.",
        body="",
        author="IST",
        draft=False,
        digest=f"{key}{lang}{corrected}",
    )


FIXED_AT = datetime(2024, 6, 5, 13, 15, tzinfo=UTC)  # 14:15 in London (BST)
NEW_EN = statement("new", "en", "A new statement")
FIXED_EN = statement("war", "en", "No to war", FIXED_AT)
FIXED_RU = statement("war", "ru", "Нет войне", FIXED_AT)
BY_ID = {s.id: s for s in (NEW_EN, FIXED_EN, FIXED_RU)}


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(
        template_environment(jinja2.FileSystemLoader(str(DEFAULTS))),
        SETTINGS,
        translations=load_translations("en"),
        signer=SIGNER,
        statements=BY_ID,
        date=datetime(2024, 6, 6, 7, tzinfo=UTC),
    )


def delivery(lang: str, ids: tuple[str, ...], corrected: tuple[str, ...]) -> Delivery:
    return Delivery(
        edition_id=2,
        email="anna@example.org",
        name="Anna",
        lang=lang,
        statement_ids=ids,
        message_id=SIGNER.message_id(2, "anna@example.org", "example.org"),
        attempts=1,
        first_attempt_at=None,
        corrected_ids=corrected,
    )


def parts(raw: bytes) -> tuple[EmailMessage, str, str]:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage) and not message.defects
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return message, text.get_content(), html.get_content()


def test_new_and_corrected_statements_in_separate_sections(composer: Composer) -> None:
    message, text, html = parts(composer(delivery("en", (NEW_EN.id,), (FIXED_EN.id,))))
    assert message["Subject"] == "Socialism From Below: 1 new statement"
    for body in (text, html):
        assert "1 new statement" in body and "1 corrected statement" in body
        assert "Corrected on June 5, 2024, 2:15" in body  # the correction time, local
        # The new statement comes first, then the "Corrected" section.
        assert body.index("A new statement") < body.index("1 corrected statement")
        assert body.index("1 corrected statement") < body.index("No to war")
    assert 'datetime="2024-06-05T14:15+01:00"' in html


def test_a_digest_of_corrections_only_says_so_in_subject_and_heading(composer: Composer) -> None:
    message, text, html = parts(composer(delivery("ru", (), (FIXED_RU.id,))))
    assert message["Subject"] == "Социализм снизу: 1 исправленное заявление"
    for body in (text, html):
        assert "новых" not in body  # no "0 new statements" heading
        assert body.count("1 исправленное заявление") == 1  # the heading, once
        assert "Нет войне" in body and "Исправлено 5 июня 2024\u202fг., 14:15" in body


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("de", "Korrigiert am 5. Juni 2024, 14:15"), ("fr", "Corrigée le 5 juin 2024, 14:15")],
)
def test_every_shipped_locale_has_the_section(composer: Composer, lang: str, expected: str) -> None:
    _, text, html = parts(composer(delivery(lang, (), (FIXED_EN.id,))))
    assert expected in text and expected in html


def test_a_delivery_without_corrections_is_rendered_as_before(composer: Composer) -> None:
    plain = delivery("en", (NEW_EN.id,), ())
    with_fix = delivery("en", (NEW_EN.id,), (FIXED_EN.id,))
    assert composer(plain) != composer(with_fix)
    _, text, _ = parts(composer(plain))
    assert "corrected" not in text.lower()


def test_a_corrected_statement_no_longer_known_cannot_be_composed(composer: Composer) -> None:
    # The sender records such a delivery as failed ("cannot compose"), like a new one.
    with pytest.raises(KeyError):
        composer(delivery("en", (), ("urn:test:gone:en",)))


def test_a_broken_corrected_block_in_a_site_template_is_a_config_error(tmp_path: Path) -> None:
    from statement_feeds.config import load_config
    from statement_feeds.digests.service import Digests
    from statement_feeds.errors import ConfigError

    site = tmp_path / "site"
    (site / "templates").mkdir(parents=True)
    text = (DEFAULTS / "digest.txt").read_text(encoding="utf-8")
    broken = text.replace("{{ item.corrected }}", "{{ item.corrected.nope() }}")
    assert broken != text
    (site / "templates" / "digest.txt").write_text(broken, encoding="utf-8")
    (site / "statement-feeds.toml").write_text(
        '[site]\ntitle = "S"\nurl = "https://example.org/"\n'
        '[http]\npublic_url = "https://example.org/n/"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"digest\.txt"):
        Digests(load_config(site / "statement-feeds.toml")).check_templates()


def test_statement_digest_changes_with_the_correction() -> None:
    # The bundle cache and MIME boundary key on it: a new correction is a new bundle.
    later = dataclasses.replace(FIXED_EN, updated=FIXED_AT.replace(hour=20), digest="other")
    assert later.digest != FIXED_EN.digest
