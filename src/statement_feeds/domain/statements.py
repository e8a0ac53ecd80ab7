"""Statement files: front matter + Markdown body → :class:`Statement`, or problems.

Pure: the caller supplies the file's bytes, its path relative to the statements
folder, and the site defaults. Nothing here reads the disk or the clock.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, tzinfo
from operator import attrgetter
from typing import Any

import yaml

from .excerpts import excerpt
from .langtags import canonical_tag, is_language_suffix
from .markup import render_raw
from .problems import Problem

__all__ = [
    "ParseResult",
    "SiteDefaults",
    "Statement",
    "content_digest",
    "inherit_identity",
    "parse_statement",
    "split_name",
    "statement_body",
    "statement_id",
]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FrontMatterLoader(_Loader):  # type: ignore[misc]
    """Safe loader that leaves dates as strings: we parse them with better errors."""


class _Resolver(yaml.resolver.Resolver):
    """Types of plain values, as the loader resolves them (for the fast path)."""


_FrontMatterLoader.yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_resolve: Callable[..., str] = _Resolver().resolve  # (kind, value, implicit) -> tag

# Part of the build cache's key: bump when parsing or excerpt rules change.
PARSER_VERSION = "12"

KNOWN_KEYS = frozenset(
    {
        "title",
        "date",
        "lang",
        "url",
        "translation_key",
        "id",
        "updated",
        "summary",
        "author",
        "draft",
    }
)


@dataclass(frozen=True, slots=True)
class SiteDefaults:
    """The configuration a statement's defaults come from."""

    url: str  # ends with "/"
    default_language: str
    timezone: tzinfo
    author: str
    excerpt_words: int
    id_base: str = ""  # scope of the default ids (site.id_base); "" means ``url``


@dataclass(frozen=True, slots=True)
class Statement:
    source: str  # path relative to the statements folder, "/"-separated
    id: str
    lang: str
    translation_key: str
    title: str
    published: datetime  # aware
    updated: datetime  # aware, >= published
    url: str
    summary: str
    body: str  # Markdown
    author: str
    draft: bool
    digest: str  # hash of the file's bytes: what the caches key on

    def __reduce__(self) -> tuple[type[Statement], tuple[Any, ...]]:
        # A call of the class with the field values (workers send statements back):
        # dataclasses' own __getstate__/__setstate__ for slotted classes loop in Python.
        # Datetimes pickle in C; a ZoneInfo once per pickle (the memo), and unpickles
        # to the one cached instance per zone.
        return (Statement, _field_values(self))


_field_values = attrgetter(*(f.name for f in fields(Statement)))


@dataclass(frozen=True, slots=True)
class ParseResult:
    statement: Statement | None
    problems: tuple[Problem, ...]


def content_digest(data: bytes) -> str:
    """What caches key a file's bytes on. SHA-256 because it runs in hardware on
    today's CPUs; hashlib's BLAKE2 is the portable C reference code, several times
    slower, and hashing was a visible part of parsing."""
    return hashlib.sha256(data).hexdigest()[:32]


def split_name(source: str, default_language: str) -> tuple[str, str | None]:
    """``a/belarus.ru.md`` → (``belarus``, ``ru``); the language is None without a suffix."""
    name = source.rsplit("/", 1)[-1]
    stem = name[:-3] if name.endswith(".md") else name
    base, dot, suffix = stem.rpartition(".")
    if dot and base and is_language_suffix(suffix):
        return base, canonical_tag(suffix)
    return stem, None


def parse_statement(
    source: str,
    data: bytes,
    site: SiteDefaults,
    render: Callable[[str], str] = render_raw,
    *,
    digest: str | None = None,
) -> ParseResult:
    """Parse one statement file. Never raises on bad input: returns problems instead.

    ``render`` renders the body's CommonMark for the excerpt (see ``excerpts.excerpt``);
    ``digest`` is ``content_digest(data)`` when the caller has it already.
    """
    problems: list[Problem] = []
    try:
        statement = _parse(source, data, site, problems, render, digest=digest)
    except _Invalid as invalid:
        return ParseResult(None, (invalid.problem,))
    if problems or statement is None:
        return ParseResult(None, tuple(problems))
    return ParseResult(statement, ())


class _Invalid(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _parse(
    source: str,
    data: bytes,
    site: SiteDefaults,
    problems: list[Problem],
    render: Callable[[str], str],
    *,
    digest: str | None,
) -> Statement | None:
    text = _decode(source, data)
    header, body = _split_front_matter(source, text)
    fields, lines = _simple_front_matter(header) or _load_yaml(source, header)
    check = _Checker(source, lines, problems)

    for key in sorted(set(fields) - KNOWN_KEYS):
        check.fail(key, f"unknown key {key!r}", f"known keys: {', '.join(sorted(KNOWN_KEYS))}")
    title = check.title(fields.get("title"))
    published = check.moment("date", fields.get("date"), site.timezone, required=True)
    updated = check.moment("updated", fields.get("updated"), site.timezone, required=False)
    if published and updated and updated < published:
        check.fail(
            "updated", "'updated' is before 'date'", "a correction cannot precede publication"
        )
    key_from_name, lang_from_name = split_name(source, site.default_language)
    lang = check.language(fields.get("lang"), lang_from_name or site.default_language)
    translation_key = check.text("translation_key", fields.get("translation_key"), key_from_name)
    explicit_id = check.text("id", fields.get("id"), "")
    url = check.url(fields.get("url"))
    summary = check.text("summary", fields.get("summary"), "", multiline=True)
    author = check.text("author", fields.get("author"), site.author)
    draft = check.flag("draft", fields.get("draft"))
    if problems or title is None or published is None or lang is None:
        return None
    return Statement(
        source=source,
        id=statement_id(site.id_base or site.url, translation_key, lang, explicit_id),
        lang=lang,
        translation_key=translation_key,
        title=title,
        published=published,
        updated=updated or published,
        url=url or f"{site.url}{lang}/{slugify(translation_key)}/",
        summary=summary or excerpt(body, site.excerpt_words, render),
        body=body,
        author=author,
        draft=draft,
        digest=digest or content_digest(data),
    )


def inherit_identity(statement: Statement, old: Statement, site: SiteDefaults) -> Statement:
    """``statement`` with the identity of ``old`` (a rename of the same file content).

    The url follows the translation key only where it was the default one.
    """
    default_url = f"{site.url}{statement.lang}/{slugify(statement.translation_key)}/"
    return replace(
        statement,
        translation_key=old.translation_key,
        id=old.id,
        url=old.url if statement.url == default_url else statement.url,
    )


def statement_body(source: str, data: bytes) -> str:
    """The Markdown body of a statement file; ValueError if it cannot be read as one."""
    try:
        return _split_front_matter(source, _decode(source, data))[1]
    except _Invalid as invalid:
        raise ValueError(str(invalid.problem)) from None


# RFC 3987: characters never allowed in an IRI (feed validators flag them in ids and links).
_IRI_CHARS = r"[^\s<>\"{}|\\^`]"
_IRI = re.compile(rf"[a-zA-Z][a-zA-Z0-9+.-]*:{_IRI_CHARS}+")
_HTTP_IRI = re.compile(rf"https?://[^\s/<>\"{{}}|\\^`]+{_IRI_CHARS}*")


def statement_id(site_url: str, translation_key: str, lang: str, explicit: str = "") -> str:
    """A stable Atom id: never from the title, url or path, so renames and fixes keep it.

    An explicit id that is already a URI (``tag:``, ``urn:``, ``https:``) is used as
    is; anything else is turned into a name-based UUID URN, scoped to the site.
    """
    if explicit and _IRI.fullmatch(explicit):
        return explicit
    name = f"{site_url}#statement/{explicit or translation_key + '/' + lang}"
    return uuid.uuid5(uuid.NAMESPACE_URL, name).urn


def slugify(text: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", unicodedata.normalize("NFKC", text).lower()).strip("-")
    return slug or "statement"


def _decode(source: str, data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _Invalid(
            Problem(
                source,
                f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                "save the file as UTF-8",
                line,
            )
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_front_matter(source: str, text: str) -> tuple[str, str]:
    opening = re.match(r"---[ \t]*\n", text)
    if opening is None:
        raise _Invalid(
            Problem(
                source,
                "no front matter",
                "start the file with a line '---', then 'title:' and 'date:', then '---'",
                1,
            )
        )
    start = opening.end()
    closing = re.search(r"^---[ \t]*$", text[start:], re.MULTILINE)
    if closing is None:
        raise _Invalid(
            Problem(source, "front matter is not closed", "add a line '---' after the last key", 1)
        )
    return text[start : start + closing.start()], text[start + closing.end() :].lstrip("\n")


# The front matter nearly every statement has: lines "key: value" with a known key at
# the start of the line, and a value YAML reads as a string: double- or single-quoted
# without escapes, or plain (no indicator first, no " #", no ": ", nothing YAML would
# take as a comment, a flow or block structure, or a line break). Anything else, even
# a blank line, goes to the YAML loader; so does a plain value YAML resolves to another
# type (true, 12, null). Building a YAML parser and its nodes was a third of parsing a
# statement; these lines read the same either way (tests/domain/test_front_matter.py).
_SIMPLE_LINE = re.compile(
    rf"({'|'.join(sorted(KNOWN_KEYS))}): +"
    r"""(?:"([^"\\]*)"|'([^']*)'"""
    r"""|([^\s\-?:,\[\]{}#&*!|>'"%@`](?:[^\s:#]|:(?=\S)| +(?=[^\s#]))*)) *"""
)
# Characters the fast path leaves to YAML: line breaks other than "\n" (YAML 1.1 has
# four more), tabs, byte order marks, and what YAML refuses to read (C0 and C1
# controls, U+FFFE, U+FFFF, surrogates). Listed rather than the allowed ranges
# negated, which took 3 ms to compile at every process start.
_NOT_FAST = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
_REFUSED = ("Cc", "Cf", "Zl", "Zp")  # character categories a title may not contain
_STR_TAG = "tag:yaml.org,2002:str"
_IMPLICIT = (True, False)  # a plain scalar: its type is resolved from its text


def _simple_front_matter(header: str) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The front matter when every line is a plain "key: text" line; None otherwise."""
    if not header.endswith("\n") or _NOT_FAST.search(header):
        return None
    fields: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(header[:-1].split("\n"), start=2):  # after "---"
        match = _SIMPLE_LINE.fullmatch(line)
        if match is None:
            return None
        key, double, single, plain = match.groups()
        if plain is not None and _resolve(yaml.ScalarNode, plain, _IMPLICIT) != _STR_TAG:
            return None  # true, 12, null...: YAML's own types and messages
        fields[key] = double if double is not None else single if single is not None else plain
        lines[key] = number
    return fields, lines


def _load_yaml(source: str, header: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Load the front matter; also return each top-level key's line in the file."""
    try:
        loader = _FrontMatterLoader(header)
        try:
            node = loader.get_single_node()
            value = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:  # a raw control character: no mark, a position
        raise _Invalid(
            Problem(
                source,
                f"invalid YAML in front matter: control character U+{exc.character:04X}",
                "remove the invisible character from that line",
                header[: exc.position].count("\n") + 2,
            )
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _Invalid(
            Problem(
                source,
                f"invalid YAML in front matter: {reason}",
                "check quoting and indentation",
                line,
            )
        ) from None
    except (ValueError, TypeError) as exc:  # constructor errors outside YAMLError
        raise _Invalid(
            Problem(source, f"invalid front matter: {exc}", "check the values", None)
        ) from None
    if not isinstance(value, dict):
        raise _Invalid(
            Problem(
                source, "front matter must be 'key: value' lines", "e.g. 'title: My statement'", 2
            )
        )
    lines = {}
    if node is not None:
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):  # +1 for "---", +1 for 1-based
                lines[str(key_node.value)] = key_node.start_mark.line + 2
    return {str(k): v for k, v in value.items()}, lines


def _shown(value: Any) -> str:
    """A value for a message. Never repr() a list or mapping: through YAML aliases
    ("billion laughs") its text form can be exponentially big."""
    if isinstance(value, str | int | float | bool | date):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"a {type(value).__name__}"


def _to_datetime(value: Any, tz: tzinfo) -> datetime:
    """A YAML date value as an aware datetime: a date alone is 00:00 in ``tz``, and so
    is a time without offset. Raises ValueError saying what is wrong."""
    if isinstance(value, datetime):  # an explicit "!!timestamp" tag
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tz)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # 20200826: the ISO 8601 basic format, read by YAML as a number
    if not isinstance(value, str):
        raise ValueError(_shown(value))  # never str() it: see _shown
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), time(0), tz)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError as exc:
        raise ValueError(f"{text!r} ({exc})") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


class _Checker:
    """Validates front-matter values, recording a Problem per bad key."""

    def __init__(self, source: str, lines: dict[str, int], problems: list[Problem]) -> None:
        self.source = source
        self.lines = lines
        self.problems = problems

    def fail(self, key: str, message: str, hint: str) -> None:
        self.problems.append(Problem(self.source, message, hint, self.lines.get(key)))

    def title(self, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            self.fail("title", "missing or empty 'title'", "add 'title: ...' to the front matter")
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.fail("title", "'title' must be plain text", 'quote it: title: "..."')
            return None
        text = str(value).strip()
        # isprintable() is False for every Cc, Cf, Zl and Zp character (and for some
        # harmless ones, e.g. a no-break space): a quick pass in C before the careful
        # one. Zl/Zp are U+2028/U+2029, line breaks as much as "\n" is.
        bad = None
        if not text.isprintable():
            bad = next(
                (
                    c
                    for c in text
                    if unicodedata.category(c) in _REFUSED and c not in "\u200d\u200c"
                ),
                None,
            )
        if bad is not None:
            what = (
                "a line break"
                if bad in "\n\r\u2028\u2029\x85"
                else f"control character U+{ord(bad):04X}"
            )
            self.fail("title", f"'title' contains {what}", "a title is one line of plain text")
            return None
        return text

    def moment(self, key: str, value: Any, tz: tzinfo, *, required: bool) -> datetime | None:
        if value is None:
            if required:
                self.fail(
                    key, f"missing '{key}'", f"add '{key}: YYYY-MM-DD' (or an ISO 8601 date-time)"
                )
            return None
        hint = "use an ISO 8601 date like 2020-08-26 or 2020-08-26T09:30:00+01:00"
        try:
            moment = _to_datetime(value, tz)
        except ValueError as exc:
            self.fail(key, f"'{key}' is not a valid date: {exc}", hint)
            return None
        try:
            moment.astimezone(UTC)  # feeds and digests work in UTC: year 1 or 9999 may not fit
        except OverflowError:
            self.fail(key, f"'{key}' is out of range: {moment.isoformat()}", hint)
            return None
        return moment

    def language(self, value: Any, default: str) -> str | None:
        if value is None:
            return default
        tag = canonical_tag(str(value)) if isinstance(value, str) else None
        if tag is None:
            self.fail(
                "lang",
                f"'lang' is not a BCP 47 language tag: {_shown(value)}",
                "e.g. en, ru, pt-BR",
            )
        return tag

    def text(self, key: str, value: Any, default: str, *, multiline: bool = False) -> str:
        if value is None:
            return default
        if (
            not isinstance(value, str | int | float)
            or isinstance(value, bool)
            or not str(value).strip()
        ):
            self.fail(key, f"'{key}' must be non-empty text", f"remove '{key}' or give it a value")
            return default
        text = str(value).strip()
        if not multiline and "\n" in text:
            self.fail(key, f"'{key}' must be one line", "remove the line break")
        return text

    def url(self, value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or not _HTTP_IRI.fullmatch(value.strip()):
            self.fail(
                "url",
                f"'url' must be an absolute http(s) URL, got {_shown(value)}",
                "e.g. https://example.org/en/x/",
            )
            return ""
        return value.strip()

    def flag(self, key: str, value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(
                key, f"'{key}' must be true or false, got {_shown(value)}", f"write '{key}: true'"
            )
            return False
        return value
