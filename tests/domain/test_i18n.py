from __future__ import annotations

import re
from datetime import date

import pytest

from statement_feeds.domain import i18n
from statement_feeds.domain.i18n import Translations, parse_po
from statement_feeds.locales import load_translations, po_sources


@pytest.fixture(scope="module")
def translations() -> Translations:
    return load_translations("en")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "1 новое заявление"),
        (2, "2 новых заявления"),
        (5, "5 новых заявлений"),
        (11, "11 новых заявлений"),
        (21, "21 новое заявление"),
        (22, "22 новых заявления"),
        (0, "0 новых заявлений"),
        (111, "111 новых заявлений"),
    ],
)
def test_russian_has_three_plural_forms(translations: Translations, n: int, expected: str) -> None:
    assert translations.for_language("ru").plural(i18n.COUNT, n) == expected


def test_english_french_and_german_plurals(translations: Translations) -> None:
    assert translations.for_language("en").plural(i18n.COUNT, 1) == "1 new statement"
    assert translations.for_language("en").plural(i18n.COUNT, 0) == "0 new statements"
    assert translations.for_language("fr").plural(i18n.COUNT, 0) == "0 nouvelle déclaration"
    assert translations.for_language("fr").plural(i18n.COUNT, 2) == "2 nouvelles déclarations"
    assert translations.for_language("de").plural(i18n.COUNT, 3) == "3 neue Erklärungen"


def test_every_shipped_catalog_translates_every_string() -> None:
    for lang, source in po_sources().items():
        catalog = parse_po(lang, source)
        missing = [s for s in i18n.SOURCE_STRINGS if s not in catalog.messages]
        assert not missing, f"{lang}.po lacks {missing}"
    assert {"en", "ru", "de", "fr"} <= set(po_sources())


RU_PLURAL = "(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2)"
PARTIAL_RU = """
msgid ""
msgstr ""
"Plural-Forms: nplurals=3; plural=RU_PLURAL;\\n"

msgid "Full statement"
msgstr "Полный текст"

msgid "Unsubscribe"
msgstr ""

#, fuzzy
msgid "Hello,"
msgstr "Привет?"

msgid "Hello {name},"
msgstr "Привет, {nmae}!"
""".replace("RU_PLURAL", RU_PLURAL).encode()

GERMAN_DEFAULT = b"""
msgid "Unsubscribe"
msgstr "Abbestellen"
"""


def test_missing_strings_fall_back_to_the_default_language_then_english() -> None:
    translations = Translations(
        {"ru": parse_po("ru", PARTIAL_RU), "de": parse_po("de", GERMAN_DEFAULT)}, "de"
    )
    ru = translations.for_language("ru")
    assert ru.text(i18n.FULL_STATEMENT) == "Полный текст"
    assert ru.text(i18n.UNSUBSCRIBE) == "Abbestellen"  # empty msgstr → default language
    assert ru.text(i18n.GREETING) == "Hello,"  # fuzzy → not used; nobody else has it
    assert ru.text(i18n.GREETING_NAMED, name="Анна") == "Hello Анна,"  # broken placeholder
    assert ru.plural(i18n.COUNT, 5) == "5 new statements"  # English, English plural rule


def test_missing_string_in_english_default(translations: Translations) -> None:
    only_ru = Translations({"ru": parse_po("ru", PARTIAL_RU)}, "en")
    assert only_ru.for_language("ru").text(i18n.UNSUBSCRIBE) == "Unsubscribe"
    # A regional tag uses its language's catalog.
    assert translations.for_language("ru-UA").text(i18n.UNSUBSCRIBE) == "Отписаться"
    assert translations.for_language("xx").text(i18n.UNSUBSCRIBE) == "Unsubscribe"


def test_dates_are_formatted_in_the_message_language(translations: Translations) -> None:
    day = date(2020, 8, 26)
    assert translations.for_language("ru").date(day).startswith("26 августа 2020")
    assert translations.for_language("de").date(day) == "26. August 2020"
    assert translations.for_language("fr").date(day) == "26 août 2020"
    assert translations.for_language("en").date(day) == "August 26, 2020"


def test_the_cache_of_languages_is_bounded_whatever_tags_are_asked_for() -> None:
    translations = load_translations("en")
    for n in range(i18n.CACHED_LANGUAGES * 3):
        junk = f"x{n:04d}" + "q" * 1000
        messages = translations.for_language(junk)
        # Beyond the cap a language is still served correctly, from the fallback chain.
        assert messages.text(i18n.FULL_STATEMENT) == "Full statement"
    assert translations.cached == i18n.CACHED_LANGUAGES
    assert translations.for_language("ru").text(i18n.FULL_STATEMENT) == "Полный текст заявления"


def test_french_punctuation_has_a_non_breaking_space_before_double_marks() -> None:
    """French writes "Déclaration complète : …": a non-breaking space before : ; ? ! and
    inside « », never a plain space (a line must not break there)."""
    source = po_sources()["fr"].decode("utf-8")
    strings = [line for line in source.splitlines() if line.startswith("msgstr")]
    assert strings
    for line in strings:
        assert not re.search(r" [:;?!»]|« ", line), line
    messages = load_translations("en").for_language("fr")
    assert messages.text(i18n.LABELLED, label="Déclaration complète", value="x") == (
        "Déclaration complète\u00a0: x"
    )
