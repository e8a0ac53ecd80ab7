"""Statement files: every front-matter key with its default, and every kind of bad input."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statement_feeds.domain.catalog import build_catalog
from statement_feeds.domain.markup import render_html
from statement_feeds.domain.problems import Problem
from statement_feeds.domain.statements import (
    KNOWN_KEYS,
    ParseResult,
    SiteDefaults,
    Statement,
    content_digest,
    parse_statement,
    split_name,
)

LONDON = ZoneInfo("Europe/London")
SITE = SiteDefaults(
    url="https://example.org/",
    default_language="en",
    timezone=LONDON,
    author="International Socialist Tendency",
    excerpt_words=5,
)
BODY = "One two three four five six seven.\n\nEight nine.\n"


def md(*front: str, body: str = BODY) -> bytes:
    """A statement file from front-matter lines."""
    return ("---\n" + "\n".join(front) + "\n---\n\n" + body).encode()


GOOD = ("title: Belarus and the struggle", "date: 2020-08-26")


def parse(source: str, data: bytes, site: SiteDefaults = SITE) -> ParseResult:
    result = parse_statement(source, data, site)
    assert (result.statement is None) == bool(result.problems), result
    return result


def ok(source: str, data: bytes, site: SiteDefaults = SITE) -> Statement:
    result = parse(source, data, site)
    assert result.statement is not None, [str(p) for p in result.problems]
    return result.statement


def problem(source: str, data: bytes) -> Problem:
    """The one problem reported for a bad file; it must say how to fix it."""
    result = parse(source, data)
    assert result.statement is None
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    found = result.problems[0]
    assert found.source == source
    assert found.hint, f"no hint in {found}"
    return found


# --- defaults of every key -----------------------------------------------------------


def test_minimal_file_gets_every_default() -> None:
    statement = ok("2020/belarus.md", md(*GOOD))
    assert statement.source == "2020/belarus.md"
    assert statement.title == "Belarus and the struggle"
    assert statement.lang == "en"  # site.default_language: no suffix, no key
    assert statement.translation_key == "belarus"
    assert statement.url == "https://example.org/en/belarus/"
    assert statement.published == datetime(2020, 8, 26, tzinfo=LONDON)
    assert statement.updated == statement.published
    assert statement.author == "International Socialist Tendency"
    assert statement.draft is False
    assert statement.summary == "One two three four five …"
    assert statement.body == BODY


@pytest.mark.parametrize(
    ("source", "lang", "key"),
    [
        ("belarus.ru.md", "ru", "belarus"),
        ("2020/belarus.en.md", "en", "belarus"),
        ("belarus.pt-BR.md", "pt-BR", "belarus"),
        ("belarus.pt-br.md", "pt-BR", "belarus"),  # canonical case
        ("belarus.zh-hant.md", "zh-Hant", "belarus"),
        ("report.final.md", "en", "report.final"),  # "final" is no language
        ("no-suffix.md", "en", "no-suffix"),
    ],
)
def test_language_and_translation_key_come_from_the_file_name(
    source: str, lang: str, key: str
) -> None:
    statement = ok(source, md(*GOOD))
    assert (statement.lang, statement.translation_key) == (lang, key)
    assert statement.url == f"https://example.org/{lang}/{key.replace('.', '-')}/"


def test_default_language_is_the_sites_when_the_name_has_no_suffix() -> None:
    site = SiteDefaults("https://example.org/", "ru", LONDON, "IST", 100)
    assert ok("belarus.md", md(*GOOD), site).lang == "ru"


def test_explicit_keys_override_the_defaults() -> None:
    statement = ok(
        "belarus.md",
        md(
            *GOOD,
            "lang: pt-br",
            "translation_key: belarus-2020",
            "url: https://example.org/statements/belarus/",
            "author: Revolutionary Socialists",
            "summary: Our statement on Belarus.",
            "updated: 2020-08-27T10:15:00+01:00",
        ),
    )
    assert statement.lang == "pt-BR"
    assert statement.translation_key == "belarus-2020"
    assert statement.url == "https://example.org/statements/belarus/"
    assert statement.author == "Revolutionary Socialists"
    assert statement.summary == "Our statement on Belarus."  # as written, no "…"
    assert statement.updated == datetime(2020, 8, 27, 9, 15, tzinfo=UTC)


def test_explicit_summary_is_used_even_when_longer_than_the_excerpt() -> None:
    text = "A summary much longer than five words, kept whole"
    assert ok("a.md", md(*GOOD, f"summary: {text}")).summary == text


def test_excerpt_is_the_default_summary_and_keeps_paragraphs() -> None:
    site = SiteDefaults("https://example.org/", "en", LONDON, "IST", 9)
    assert (
        ok("a.md", md(*GOOD), site).summary == "One two three four five six seven.\n\nEight nine."
    )


def test_url_default_uses_the_site_url_and_a_slug_of_the_key() -> None:
    site = SiteDefaults("https://example.org/news/", "en", LONDON, "IST", 100)
    statement = ok("IST Statement.ru.md", md(*GOOD), site)
    assert statement.url == "https://example.org/news/ru/ist-statement/"


def test_draft_true_is_kept_as_a_flag() -> None:
    assert ok("a.md", md(*GOOD, "draft: true")).draft is True
    assert ok("a.md", md(*GOOD, "draft: false")).draft is False


# --- dates ---------------------------------------------------------------------------


def test_date_alone_is_midnight_in_the_site_timezone() -> None:
    winter = ok("a.md", md("title: T", "date: 2020-01-15")).published
    summer = ok("a.md", md("title: T", "date: 2020-08-26")).published
    assert winter == datetime(2020, 1, 15, 0, 0, tzinfo=UTC)  # GMT
    assert summer == datetime(2020, 8, 25, 23, 0, tzinfo=UTC)  # BST = UTC+1
    other = SiteDefaults("https://example.org/", "en", ZoneInfo("Asia/Tokyo"), "IST", 100)
    assert ok("a.md", md("title: T", "date: 2020-08-26"), other).published == datetime(
        2020, 8, 25, 15, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2020-08-26T09:30:00+03:00", datetime(2020, 8, 26, 6, 30, tzinfo=UTC)),
        ("2020-08-26T09:30:00-05:30", datetime(2020, 8, 26, 15, 0, tzinfo=UTC)),
        ("2020-08-26T09:30:00Z", datetime(2020, 8, 26, 9, 30, tzinfo=UTC)),
        ("2020-08-26 09:30:00+00:00", datetime(2020, 8, 26, 9, 30, tzinfo=UTC)),
        ('"2020-08-26T09:30:00+01:00"', datetime(2020, 8, 26, 8, 30, tzinfo=UTC)),
        # no offset: the site's time zone (BST in August)
        ("2020-08-26T09:30", datetime(2020, 8, 26, 8, 30, tzinfo=UTC)),
    ],
)
def test_datetimes_with_offsets(written: str, expected: datetime) -> None:
    published = ok("a.md", md("title: T", f"date: {written}")).published
    assert published == expected
    assert published.utcoffset() is not None


def test_basic_format_date_read_by_yaml_as_a_number_is_accepted() -> None:
    assert ok("a.md", md("title: T", "date: 20200826")).published == datetime(
        2020, 8, 26, tzinfo=LONDON
    )


def test_explicit_yaml_timestamp_tag_is_accepted() -> None:
    statement = ok("a.md", md("title: T", "date: !!timestamp 2020-08-26"))
    assert statement.published == datetime(2020, 8, 26, tzinfo=LONDON)


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31T23:00:00-12:00"])
def test_dates_that_do_not_fit_in_utc_are_reported(value: str) -> None:
    tokyo = SiteDefaults("https://example.org/", "en", ZoneInfo("Asia/Tokyo"), "IST", 5)
    result = parse_statement("a.md", md("title: T", f"date: {value}"), tokyo)
    assert result.statement is None
    (found,) = result.problems
    assert "'date' is out of range" in found.message
    assert found.line == 3


def test_updated_defaults_to_date_and_may_equal_it() -> None:
    statement = ok("a.md", md("title: T", "date: 2020-08-26", "updated: 2020-08-26"))
    assert statement.updated == statement.published


# --- ids -----------------------------------------------------------------------------


def test_id_is_derived_from_translation_key_and_language() -> None:
    english = ok("belarus.en.md", md(*GOOD))
    russian = ok("belarus.ru.md", md(*GOOD))
    other = ok("refugees.en.md", md(*GOOD))
    assert len({english.id, russian.id, other.id}) == 3
    assert english.id.startswith("urn:uuid:")


def test_id_survives_a_move_to_a_subfolder() -> None:
    assert ok("belarus.en.md", md(*GOOD)).id == ok("2020/08/belarus.en.md", md(*GOOD)).id


def test_id_survives_a_title_fix_and_a_url_change() -> None:
    before = ok("belarus.en.md", md("title: Belarus and teh struggle", "date: 2020-08-26"))
    after = ok(
        "belarus.en.md",
        md(
            "title: Belarus and the struggle",
            "date: 2020-08-26",
            "url: https://example.org/other/",
            "updated: 2020-08-27",
        ),
    )
    assert before.id == after.id


def test_id_survives_a_rename_that_keeps_the_translation_key() -> None:
    before = ok("belarus.en.md", md(*GOOD))
    after = ok("2020-08-belarus-statement.en.md", md(*GOOD, "translation_key: belarus"))
    assert after.id == before.id


def test_id_survives_a_rename_that_keeps_an_explicit_id() -> None:
    before = ok("belarus.en.md", md(*GOOD, "id: ist-belarus-2020"))
    after = ok("renamed.en.md", md(*GOOD, "id: ist-belarus-2020"))
    assert after.id == before.id
    assert after.id != ok("renamed.en.md", md(*GOOD)).id


def test_renaming_without_a_key_changes_the_id() -> None:
    # The test above would pass trivially if ids ignored the name altogether.
    assert ok("belarus.en.md", md(*GOOD)).id != ok("renamed.en.md", md(*GOOD)).id


def test_explicit_uri_id_is_used_as_is() -> None:
    statement = ok("a.md", md(*GOOD, "id: tag:example.org,2020:belarus"))
    assert statement.id == "tag:example.org,2020:belarus"


def test_id_is_scoped_to_the_site() -> None:
    other = SiteDefaults("https://other.example/", "en", LONDON, "IST", 100)
    assert ok("a.md", md(*GOOD)).id != ok("a.md", md(*GOOD), other).id


# --- accepted encodings --------------------------------------------------------------


def test_utf8_bom_and_crlf_are_accepted() -> None:
    plain = ok("a.md", md(*GOOD))
    crlf = ok("a.md", b"\xef\xbb\xbf" + md(*GOOD).replace(b"\n", b"\r\n"))
    assert (crlf.title, crlf.published, crlf.summary) == (
        plain.title,
        plain.published,
        plain.summary,
    )
    assert "\r" not in crlf.body


def test_non_ascii_text_is_kept() -> None:
    statement = ok(
        "belarus.ru.md",
        md('title: "Беларусь и борьба"', "date: 2020-08-31", body="В Беларуси развернулось."),
    )
    assert statement.title == "Беларусь и борьба"
    assert statement.summary == "В Беларуси развернулось."


# --- bad input: reported with file, line and hint ------------------------------------


def test_missing_title() -> None:
    found = problem("a.md", md("date: 2020-08-26"))
    assert "title" in found.message
    assert "title:" in found.hint


def test_empty_title_is_reported_at_its_line() -> None:
    found = problem("a.md", md("date: 2020-08-26", 'title: "  "'))
    assert "empty 'title'" in found.message
    assert found.line == 3


def test_missing_date() -> None:
    found = problem("a.md", md("title: T"))
    assert "missing 'date'" in found.message
    assert "YYYY-MM-DD" in found.hint


@pytest.mark.parametrize(
    "value", ["26/08/2020", "yesterday", "2020-13-01", "2020-08-26T25:00", '""', "[2020, 8]"]
)
def test_bad_date_is_reported_at_its_line(value: str) -> None:
    found = problem("sub/a.md", md("title: T", "author: X", f"date: {value}"))
    assert "'date' is not a valid date" in found.message
    assert found.line == 4
    assert "ISO 8601" in found.hint


def test_impossible_date() -> None:
    found = problem("a.md", md("title: T", "date: 2020-02-30"))
    assert "2020-02-30" in found.message
    assert "day is out of range" in found.message
    assert found.line == 3


def test_bad_updated_is_reported_as_updated() -> None:
    found = problem("a.md", md(*GOOD, "updated: soon"))
    assert "'updated' is not a valid date" in found.message
    assert found.line == 4


def test_updated_before_date() -> None:
    found = problem("a.md", md("title: T", "date: 2020-08-26T10:00:00Z", "updated: 2020-08-26"))
    assert "'updated' is before 'date'" in found.message
    assert found.line == 4


def test_invalid_yaml_names_the_line() -> None:
    found = problem("a.md", md("title: T", "date: 2020-08-26", "author: [unclosed"))
    assert "invalid YAML" in found.message
    assert found.line is not None and found.line >= 4


def test_invalid_yaml_bad_indentation() -> None:
    found = problem("a.md", md("title: T", "  date: 2020-08-26"))
    assert "invalid YAML" in found.message
    assert found.line == 3


def test_front_matter_that_is_not_a_mapping() -> None:
    found = problem("a.md", md("- title", "- date"))
    assert "key: value" in found.message


def test_no_front_matter() -> None:
    found = problem("a.md", b"# Just a heading\n\nText.\n")
    assert "no front matter" in found.message
    assert found.line == 1
    assert "---" in found.hint


def test_unclosed_front_matter() -> None:
    found = problem("a.md", b"---\ntitle: T\ndate: 2020-08-26\n\nBody without a closing line.\n")
    assert "not closed" in found.message
    assert "'---'" in found.hint


def test_non_utf8_bytes_are_reported_with_their_line() -> None:
    data = md(*GOOD).replace(b"Eight", b"Caf\xe9")
    found = problem("a.md", data)
    assert "not valid UTF-8" in found.message
    assert "0xe9" in found.message
    assert found.line == 8
    assert "UTF-8" in found.hint


@pytest.mark.parametrize(
    ("title", "what"),
    [
        ('"Two\\nlines"', "line break"),
        ("|\n  Two\n  lines", "line break"),
        ('"Bell\\a"', "U+0007"),
        ('"Tab\\tinside"', "U+0009"),
        ('"Bidi\\u202Eoverride"', "U+202E"),
        # Unicode's line and paragraph separators (raw, or YAML's escapes \u2028, \P):
        # line breaks to str.splitlines, to mail clients and to JavaScript, as \n is.
        ('"Two\\u2028lines"', "line break"),
        ('"Two\\Plines"', "line break"),
        ('"Two\u2028lines"', "line break"),
        ("'Two\u2029lines'", "line break"),
    ],
)
def test_line_break_or_control_character_in_title(title: str, what: str) -> None:
    found = problem("a.md", md("date: 2020-08-26", f"title: {title}"))
    assert what in found.message
    assert found.line == 3
    assert "one line" in found.hint


def test_raw_control_character_in_front_matter_names_the_line() -> None:
    found = problem("a.md", md("date: 2020-08-26", "title: Bell\x07here"))
    assert "U+0007" in found.message
    assert found.line == 3


@pytest.mark.parametrize("tag", ["english", "e", "en-", "en_", "12", "en--us", "[en]"])
def test_invalid_language_tag(tag: str) -> None:
    found = problem("a.md", md(*GOOD, f"lang: {tag}"))
    assert "BCP 47" in found.message
    assert found.line == 4
    assert "pt-BR" in found.hint


def test_unknown_key_is_reported_with_the_known_ones() -> None:
    found = problem("a.md", md(*GOOD, "tilte: typo"))
    assert "unknown key 'tilte'" in found.message
    assert found.line == 4
    assert "title" in found.hint


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("draft: maybe", "'draft' must be true or false"),
        ("url: relative/", "'url' must be an absolute http(s) URL or a path"),
        ("url: javascript:alert(1)", "'url' must be an absolute http(s) URL or a path"),
        ("url: //evil.example/x/", "'url' may not start with '//'"),
        ("author: ''", "'author' must be non-empty text"),
        ("translation_key: [a, b]", "'translation_key' must be non-empty text"),
        ("title: [a, b]", "'title' must be plain text"),
    ],
)
def test_wrongly_typed_values(line: str, message: str) -> None:
    front = [f for f in GOOD if not f.startswith(line.split(":", maxsplit=1)[0] + ":")]
    found = problem("a.md", md(*front, line))
    assert message in found.message


def test_every_problem_of_a_file_is_reported() -> None:
    result = parse("a.md", md("title: ''", "date: never", "lang: ???"))
    assert {p.line for p in result.problems} == {2, 3, 4}


def test_problem_text_names_file_line_and_fix() -> None:
    found = problem("2020/a.md", md("title: T", "date: 2020-02-30"))
    assert str(found).startswith("2020/a.md:3: 'date' is not a valid date")
    assert str(found).endswith(
        "(use an ISO 8601 date like 2020-08-26 or 2020-08-26T09:30:00+01:00)"
    )


def test_huge_alias_expansion_is_not_stringified() -> None:
    # "billion laughs": the date must be rejected without building its string form.
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    result = parse("a.md", md("title: T", *lines, "date: *i"))
    assert any("'date' is not a valid date" in p.message for p in result.problems)


# --- catalog: duplicates, drafts, embargoes -------------------------------------------


def test_two_files_claiming_one_id_are_reported_and_the_first_kept() -> None:
    first = ok("2020/belarus.en.md", md(*GOOD))
    second = ok("2021/belarus.en.md", md("title: Copy", "date: 2021-01-01"))
    catalog = build_catalog([second, first], [], datetime(2030, 1, 1, tzinfo=UTC))
    assert [s.source for s in catalog.statements] == ["2020/belarus.en.md"]
    (found,) = catalog.problems
    assert found.source == "2021/belarus.en.md"
    assert "already used by 2020/belarus.en.md" in found.message
    assert "translation_key" in found.hint


def test_explicit_id_clash_is_reported() -> None:
    a = ok("a.md", md(*GOOD, "id: tag:example.org,2020:x"))
    b = ok("b.md", md(*GOOD, "id: tag:example.org,2020:x"))
    catalog = build_catalog([a, b], [], datetime(2030, 1, 1, tzinfo=UTC))
    assert len(catalog.statements) == 1
    assert [p.source for p in catalog.problems] == ["b.md"]


def test_translations_share_a_key_without_clashing() -> None:
    en = ok("belarus.en.md", md(*GOOD))
    ru = ok("belarus.ru.md", md(*GOOD))
    catalog = build_catalog([en, ru], [], datetime(2030, 1, 1, tzinfo=UTC))
    assert not catalog.problems
    assert [t.lang for t in catalog.translations()["belarus"]] == ["en", "ru"]


def test_drafts_are_never_published_and_future_dates_wait() -> None:
    past = ok("past.md", md("title: Past", "date: 2020-08-26"))
    draft = ok("draft.md", md("title: Draft", "date: 2020-08-26", "draft: true"))
    future = ok("future.md", md("title: Future", "date: 2020-09-01T12:00:00Z"))
    statements = [past, draft, future]

    def published(now: datetime) -> list[str]:
        return [s.source for s in build_catalog(statements, [], now).published]

    embargo = datetime(2020, 9, 1, 12, 0, tzinfo=UTC)
    assert published(embargo - timedelta(seconds=1)) == ["past.md"]
    assert sorted(published(embargo)) == ["future.md", "past.md"]
    assert "draft.md" not in published(datetime(2100, 1, 1, tzinfo=UTC))
    catalog = build_catalog(statements, [], embargo - timedelta(days=1))
    assert catalog.next_embargo() == embargo


def test_date_only_embargo_starts_at_local_midnight() -> None:
    statement = ok("a.md", md("title: T", "date: 2020-08-26"))
    utc_plus_1 = timezone(timedelta(hours=1))
    just_before = datetime(2020, 8, 25, 23, 59, 59, tzinfo=utc_plus_1)
    assert build_catalog([statement], [], just_before).published == []
    at_midnight = datetime(2020, 8, 26, 0, 0, tzinfo=utc_plus_1)
    assert build_catalog([statement], [], at_midnight).published == [statement]


# --- split_name ------------------------------------------------------------------------


def test_split_name() -> None:
    assert split_name("a/b/belarus.ru.md", "en") == ("belarus", "ru")
    assert split_name("belarus.md", "en") == ("belarus", None)
    assert split_name(".ru.md", "en") == (".ru", None)


# --- never a crash -------------------------------------------------------------------


def _check_outcome(result: ParseResult) -> None:
    assert isinstance(result, ParseResult)
    if result.statement is None:
        assert result.problems
        for found in result.problems:
            assert isinstance(found, Problem)
            assert found.source == "fuzz.md"
            assert found.message
            assert found.line is None or found.line >= 1
    else:
        assert not result.problems
        assert result.statement.title.strip()
        assert "\n" not in result.statement.title
        assert result.statement.updated >= result.statement.published


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _check_outcome(parse_statement("fuzz.md", data, SITE))


_YAMLISH = st.text(
    alphabet=st.sampled_from([*string.printable, "é", "\x00", "\x85", "\ufeff", "Ж"]),
    max_size=200,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_YAMLISH, max_size=6), st.binary(max_size=300), st.booleans())
def test_valid_front_matter_then_garbage_never_crashes(
    extra: list[str], garbage: bytes, closed: bool
) -> None:
    head = "---\ntitle: T\ndate: 2020-08-26\n" + "\n".join(extra)
    data = head.encode() + (b"\n---\n" if closed else b"\n") + garbage
    _check_outcome(parse_statement("fuzz.md", data, SITE))


_REFERENCE = st.one_of(
    st.integers(0, 0x11_0000).map(lambda cp: f"&#x{cp:X};"),
    st.integers(0, 1_200_000).map(lambda cp: f"&#{cp};"),
    st.sampled_from(["&#xFFFE;", "&#xFFFF;", "&#xD800;", "&#0;", "&#13;", "&nbsp;", "&amp;"]),
)
_BODY_PIECE = st.one_of(
    _REFERENCE,
    st.sampled_from(["[a](", ")", "![i](", ' "', "`", "*", "\n\n", "<b>", "</b>", "http://a.org/"]),
    st.text(max_size=5),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BODY_PIECE, max_size=25).map("".join))
def test_character_references_in_the_body_never_crash(body: str) -> None:
    # "&#xFFFE;" once made the renderer raise and stopped a whole build.
    result = parse_statement("fuzz.md", md("title: T", "date: 2020-08-26", body=body), SITE)
    _check_outcome(result)
    assert result.statement is not None
    render_html(result.statement.body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(sorted(KNOWN_KEYS)),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=30),
            st.lists(st.text(max_size=5), max_size=3),
        ),
    )
)
def test_arbitrary_values_for_known_keys_never_crash(fields: dict[str, object]) -> None:
    front = [f"{key}: {json.dumps(value)}" for key, value in fields.items()]
    _check_outcome(parse_statement("fuzz.md", md(*front), SITE))


# --- IRIs: what feed validators reject in ids and links ------------------------------


@pytest.mark.parametrize(
    "url", ["https://example.org/a<b>/", "https://example.org/a b/", "https://ex{a}.org/"]
)
def test_a_url_with_characters_an_iri_cannot_hold_is_reported(url: str) -> None:
    found = problem("a.md", md(*GOOD, f"url: '{url}'"))
    assert "'url'" in found.message and found.line == 4


def test_an_explicit_id_that_is_not_a_valid_iri_becomes_a_stable_uuid() -> None:
    first = ok("a.md", md(*GOOD, 'id: "tag:example.org,2020:belarus statement"'))
    again = ok("moved/b.md", md(*GOOD, 'id: "tag:example.org,2020:belarus statement"'))
    assert first.id.startswith("urn:uuid:") and first.id == again.id
    assert ok("a.md", md(*GOOD, 'id: "tag:example.org,2020:belarus"')).id == (
        "tag:example.org,2020:belarus"
    )


# --- pickling (worker processes send statements back pickled) ---------------------------


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 10, 27, 1, 30, tzinfo=LONDON),  # the hour that happens twice
        datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=LONDON),
        datetime(2024, 7, 1, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(1800, 1, 1, tzinfo=LONDON),  # local mean time: -00:01:15
        datetime(2024, 1, 1, tzinfo=UTC),
    ],
    ids=["fold0", "fold1", "offset", "lmt", "utc"],
)
def test_a_pickled_statement_comes_back_equal_in_its_zone(moment: datetime) -> None:
    import pickle
    from dataclasses import replace

    original = replace(ok("a.en.md", md(*GOOD)), published=moment, updated=moment)
    back = pickle.loads(pickle.dumps(original, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == original
    assert back.published.isoformat() == original.published.isoformat()
    assert back.published.utcoffset() == original.published.utcoffset()
    if isinstance(moment.tzinfo, ZoneInfo):
        assert back.published.tzinfo is moment.tzinfo  # the zone, not a fixed offset


def test_a_digest_the_caller_has_is_used_as_given() -> None:
    data = md("title: A", "date: 2020-08-26")
    plain = parse_statement("a.md", data, SITE).statement
    given_digest = parse_statement("a.md", data, SITE, digest="d" * 32).statement
    assert plain is not None and given_digest is not None
    assert plain.digest == content_digest(data) != given_digest.digest == "d" * 32
    assert given_digest == replace(plain, digest="d" * 32)
