"""Per-language strings of the digest: gettext catalogs, plural forms, localised dates.

Pure: the caller passes the ``.po`` sources as bytes (``statement_feeds.locales``
reads the bundled ones). A string missing from a language (no entry, empty or
fuzzy ``msgstr``, or a ``{placeholder}`` the translator mistyped) falls back along
``pt-BR → pt → default language → English source``, so a message is never blank.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.messages.pofile import read_po

__all__ = [
    "Catalog",
    "Messages",
    "Translations",
    "native_name",
    "parse_po",
]

# The source strings (English). Keep in sync with locales/*.po; tests check every
# shipped catalog translates each of these.
SUBJECT = ("{title}: {count} new statement", "{title}: {count} new statements")
COUNT = ("{count} new statement", "{count} new statements")
FULL_STATEMENT = "Full statement"
UNSUBSCRIBE = "Unsubscribe"
GREETING_NAMED = "Hello {name},"
GREETING = "Hello,"
WHY = "You receive this digest because you subscribed to {title}."
# Corrections (domain/corrections.py): the subject when a digest has only corrections,
# the heading of the "Corrected" section, and each item's correction time.
CORRECTED_SUBJECT = (
    "{title}: {count} corrected statement",
    "{title}: {count} corrected statements",
)
CORRECTED_COUNT = ("{count} corrected statement", "{count} corrected statements")
CORRECTED_AT = "Corrected on {time}"
CHANGE_PREFERENCES = "Change preferences"
FEED_INSTEAD = "Prefer a feed reader? Follow the statements at {url}"
# "Full statement: https://…": the colon as the language writes it (French: a
# non-breaking space before it, as in the subject).
LABELLED = "{label}: {value}"
IN_LANGUAGE = "({language})"  # after an item in another language: "(English)"
SOURCE_STRINGS: tuple[str, ...] = (
    SUBJECT[0],
    COUNT[0],
    FULL_STATEMENT,
    UNSUBSCRIBE,
    GREETING_NAMED,
    GREETING,
    WHY,
    CORRECTED_SUBJECT[0],
    CORRECTED_COUNT[0],
    CORRECTED_AT,
    CHANGE_PREFERENCES,
    FEED_INSTEAD,
    LABELLED,
    IN_LANGUAGE,
)


@dataclass(frozen=True, slots=True)
class Catalog:
    """One language's translations: msgid → forms (one form unless plural)."""

    lang: str
    messages: Mapping[str, tuple[str, ...]]
    plural: Callable[[int], int]


def parse_po(lang: str, source: bytes) -> Catalog:
    """Parse a ``.po`` file's bytes. Fuzzy and empty entries are left out (→ fallback)."""
    catalog = read_po(source.splitlines(keepends=True), locale=lang.replace("-", "_"))
    messages: dict[str, tuple[str, ...]] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
        if all(forms):
            messages[str(key)] = tuple(str(form) for form in forms)
    return Catalog(lang, messages, gettext.c2py(catalog.plural_expr))


def _english_plural(n: int) -> int:
    return 0 if n == 1 else 1


def _candidates(lang: str, default: str) -> list[str]:
    """``pt-BR`` with default ``en`` → ``["pt-BR", "pt", "en"]``."""
    out: list[str] = []
    for tag in (lang, default):
        for candidate in (tag, tag.split("-")[0]):
            if candidate not in out:
                out.append(candidate)
    return out


def _babel_locale(candidates: Iterable[str]) -> Locale:
    for tag in candidates:
        try:
            return Locale.parse(tag.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


class Messages:
    """The strings and date format of one message language."""

    def __init__(self, lang: str, chain: Sequence[Catalog], locale: Locale) -> None:
        self.lang = lang
        self.locale = locale
        self._chain = chain

    def text(self, msgid: str, **values: object) -> str:
        """Translated ``msgid`` with ``{name}`` placeholders filled in."""
        return self._pick(msgid, lambda catalog: 0, msgid, values)

    def plural(self, forms: tuple[str, str], n: int, **values: object) -> str:
        """The plural form for ``n`` (Russian: 1 заявление, 2 заявления, 5 заявлений)."""
        english = forms[_english_plural(n)]
        return self._pick(
            forms[0], lambda catalog: catalog.plural(n), english, {"count": n, **values}
        )

    def _pick(
        self, msgid: str, index: Callable[[Catalog], int], source: str, values: Mapping[str, object]
    ) -> str:
        for catalog in self._chain:
            forms = catalog.messages.get(msgid)
            if forms is None:
                continue
            position = index(catalog)
            if not 0 <= position < len(forms):
                continue
            try:
                return forms[position].format(**values)
            except (KeyError, IndexError, ValueError):
                continue  # a broken translation: use the next language rather than fail
        return source.format(**values)

    def language_name(self, tag: str) -> str:
        """The name of language ``tag`` in this language ("английский" for ``en`` in
        Russian); the tag itself when the locale data does not know it."""
        try:
            name = Locale.parse(tag.replace("-", "_")).get_display_name(self.locale)
        except (UnknownLocaleError, ValueError, TypeError):
            name = None
        return str(name) if name else tag

    def date(self, day: date) -> str:
        """A date as people of this language write it ("26 августа 2020 г.")."""
        return str(format_date(day, format="long", locale=self.locale))

    def moment(self, when: datetime) -> str:
        """A date and time as people of this language write them ("3 декабря 2026 г., 07:05")."""
        day = format_date(when.date(), format="long", locale=self.locale)
        time = format_time(when, format="short", locale=self.locale)
        return str(self.locale.datetime_formats["long"]).format(time, day)


# A site has a handful of languages. The cap is for callers that pass a tag from a
# request: each new tag would otherwise stay cached for the life of the daemon.
CACHED_LANGUAGES = 32


class Translations:
    """All catalogs, with the fallback chain resolved once per language.

    At most :data:`CACHED_LANGUAGES` languages are kept; any further one is resolved
    on each call (correct, only slower), so no input can grow the cache without bound.
    """

    def __init__(self, catalogs: Mapping[str, Catalog], default_language: str) -> None:
        self._catalogs = dict(catalogs)
        self.default_language = default_language
        self._cache: dict[str, Messages] = {}

    @classmethod
    def from_po(cls, sources: Mapping[str, bytes], default_language: str) -> Translations:
        return cls({lang: parse_po(lang, data) for lang, data in sources.items()}, default_language)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self._catalogs))

    @property
    def cached(self) -> int:
        """How many languages are cached (never more than :data:`CACHED_LANGUAGES`)."""
        return len(self._cache)

    def for_language(self, lang: str) -> Messages:
        messages = self._cache.get(lang)
        if messages is None:
            candidates = _candidates(lang, self.default_language)
            chain = [self._catalogs[tag] for tag in candidates if tag in self._catalogs]
            messages = Messages(lang, chain, _babel_locale(candidates))
            if len(self._cache) < CACHED_LANGUAGES:
                self._cache[lang] = messages
        return messages


def native_name(tag: str) -> str:
    """A language's name in that language, capitalised ("Русский"); the tag if unknown."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return tag
    name = locale.get_display_name(locale) or tag
    return str(name[:1].upper() + name[1:])
