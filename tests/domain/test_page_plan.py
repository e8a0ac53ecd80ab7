"""domain.pages and domain.sitemap: which pages a catalog has, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from lxml import etree

from statement_feeds.domain.catalog import build_catalog
from statement_feeds.domain.pages import (
    CHOOSER,
    INDEX,
    STATEMENT,
    Page,
    PageSettings,
    page_fingerprints,
    plan_pages,
    statement_page_path,
    text_direction,
)
from statement_feeds.domain.sitemap import robots_txt, sitemap_files, sitemap_key
from statement_feeds.domain.statements import SiteDefaults, Statement, parse_statement

SITE = "https://example.org/"
DEFAULTS = SiteDefaults(SITE, "en", UTC, "Author", 20)
SETTINGS = PageSettings("Site", SITE, SITE + "feeds/", "en", {"ru": "Сайт"}, per_page=2)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def statement(source: str, date: str = "2024-01-01", **keys: str) -> Statement:
    extra = "".join(f"{k}: {v}\n" for k, v in keys.items())
    text = f"---\ntitle: T {source}\ndate: {date}\n{extra}---\n\nBody.\n"
    parsed = parse_statement(source, text.encode(), DEFAULTS)
    assert parsed.statement is not None, parsed.problems
    return parsed.statement


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (SITE + "en/pension/", "en/pension/index.html"),
        (SITE + "en/пенсия/", "en/пенсия/index.html"),
        ("https://elsewhere.example/en/pension/", None),
        (SITE + "en/a/b/", None),
        (SITE + "en/../", None),
        (SITE + "en/./", None),
        (SITE + "en/x?y/", None),
        (SITE + "en/pension", None),
        (SITE + "ru/pension/", None),  # another language's folder
        (SITE + "en/page/", None),  # the list's pagination folder
        (SITE + "en//", None),
    ],
)
def test_statement_page_path(url: str, path: str | None) -> None:
    assert statement_page_path(replace(statement("pension.en.md"), url=url), SITE) == path


@pytest.mark.parametrize(
    ("tag", "direction"),
    [
        ("ar", "rtl"),
        ("ar-EG", "rtl"),
        ("he", "rtl"),
        ("fa", "rtl"),
        ("ur", "rtl"),
        ("az-Arab", "rtl"),
        ("en", "ltr"),
        ("ru", "ltr"),
        ("ku-Latn", "ltr"),
        ("arn", "ltr"),  # Mapudungun, not Arabic
    ],
)
def test_text_direction(tag: str, direction: str) -> None:
    assert text_direction(tag) == direction


def test_plan_lists_pages_of_each_kind_with_reciprocal_alternates() -> None:
    statements = [
        statement("a.en.md", "2024-01-01"),
        statement("a.ru.md", "2024-01-01"),
        statement("b.en.md", "2024-01-02"),
        statement("c.en.md", "2024-01-03", url="https://elsewhere.example/c"),
        statement("d.en.md", "2024-01-04", draft="true"),
        statement("e.en.md", "2031-01-01"),  # embargoed
    ]
    pages = plan_pages(build_catalog(statements, [], NOW), SETTINGS)
    by_path = {page.path: page for page in pages}
    assert sorted(by_path) == [
        "en/a/index.html",
        "en/b/index.html",
        "en/index.html",
        "en/page/2/index.html",
        "index.html",
        "ru/a/index.html",
        "ru/index.html",
    ]
    kinds = [p.kind for p in pages]
    assert (kinds.count(CHOOSER), kinds.count(INDEX), kinds.count(STATEMENT)) == (1, 3, 3)
    en, ru = by_path["en/a/index.html"], by_path["ru/a/index.html"]
    assert en.alternates == ru.alternates
    assert [(a.lang, a.url) for a in en.alternates] == [
        ("en", SITE + "en/a/"),
        ("ru", SITE + "ru/a/"),
    ]
    assert en.x_default == ru.x_default == SITE + "en/a/"
    first, second = by_path["en/index.html"], by_path["en/page/2/index.html"]
    assert [s.title for s in first.entries] == ["T c.en.md", "T b.en.md"]
    assert [s.title for s in second.entries] == ["T a.en.md"]
    assert (first.older, second.newer, second.older) == (SITE + "en/page/2/", SITE + "en/", "")
    assert second.alternates == () and first.x_default == SITE
    assert by_path["ru/index.html"].title == "Сайт"
    # Same input, same plan and fingerprints; a changed title changes its pages'.
    again = plan_pages(build_catalog(statements, [], NOW), SETTINGS)
    assert again == pages
    before = dict(zip(by_path, page_fingerprints(list(by_path.values()), SETTINGS), strict=True))
    assert page_fingerprints(again, SETTINGS) == page_fingerprints(pages, SETTINGS)
    changed = [replace(statements[0], title="New"), *statements[1:]]
    planned = plan_pages(build_catalog(changed, [], NOW), SETTINGS)
    after = dict(zip((p.path for p in planned), page_fingerprints(planned, SETTINGS), strict=True))
    differ = sorted(path for path, fp in after.items() if before[path] != fp)
    assert differ == ["en/a/index.html", "en/page/2/index.html", "ru/a/index.html"]


def test_sitemap_splits_past_its_limit_into_an_index() -> None:
    statements = [statement(f"s{n}.en.md", f"2024-01-{n:02d}") for n in range(1, 6)]
    pages = plan_pages(build_catalog(statements, [], NOW), SETTINGS)
    one = sitemap_files(pages, SITE)
    assert list(one) == ["sitemap.xml"]
    assert len(etree.fromstring(one["sitemap.xml"])) == len(pages)
    split = sitemap_files(pages, SITE, size=4)
    assert sorted(split) == ["sitemap.xml", "sitemaps/1.xml", "sitemaps/2.xml", "sitemaps/3.xml"]
    index = etree.fromstring(split["sitemap.xml"])
    assert etree.QName(index).localname == "sitemapindex"
    assert [e[0].text for e in index] == [f"{SITE}sitemaps/{n}.xml" for n in (1, 2, 3)]
    assert sum(len(etree.fromstring(split[f"sitemaps/{n}.xml"])) for n in (1, 2, 3)) == len(pages)
    assert (
        robots_txt(SITE) == b"User-agent: *\nAllow: /\nSitemap: https://example.org/sitemap.xml\n"
    )


# The corpus of the tests below: source → (date, extra front matter, body).
CORPUS = {
    "a.en.md": ("2024-01-01", {}, "Body."),
    "a.ru.md": ("2024-01-01", {}, "Тело."),
    "b.en.md": ("2024-01-02", {}, "Body."),
    "c.en.md": ("2024-01-03", {}, "Body."),
}


def corpus(**changes: tuple[str, dict[str, str], str] | None) -> list[Statement]:
    """The statements of CORPUS with some files changed (a new value), added, or removed
    (None); keys name the files without ``.md``, "_" for "."."""
    files = dict(CORPUS)
    for name, value in changes.items():
        source = name.replace("_", ".") + ".md"
        if value is None:
            del files[source]
        else:
            files[source] = value
    out = []
    for source, (date, keys, body) in sorted(files.items()):
        fields = {"title": f"T {source}", "date": date, **keys}
        text = "---\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()) + f"---\n\n{body}\n"
        parsed = parse_statement(source, text.encode(), DEFAULTS)
        assert parsed.statement is not None, parsed.problems
        out.append(parsed.statement)
    return out


def plan(statements: list[Statement], settings: PageSettings = SETTINGS) -> list[Page]:
    return plan_pages(build_catalog(statements, [], NOW), settings)


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"a_en": ("2024-01-01", {}, "Another body, another summary.")}, False),
        ({"a_ru": ("2024-01-01", {"title": "Новое"}, "Тело.")}, False),
        ({"a_en": ("2024-01-01", {"author": "Someone Else"}, "Body.")}, False),
        ({"a_en": ("2024-01-01", {"updated": "2024-03-01"}, "Body.")}, True),  # lastmod
        ({"a_fr": ("2024-01-01", {}, "Corps.")}, True),  # a new alternate
        ({"b_en": None}, True),  # a page gone
        ({"a_en": None}, True),  # a.ru's x-default is the chooser now
        ({"b_en": ("2024-01-02", {"draft": "true"}, "Body.")}, True),
        ({"b_en": ("2024-01-02", {"url": SITE + "en/other/"}, "Body.")}, True),
        ({"c_en": ("2024-01-03", {"url": "https://elsewhere.example/c/"}, "Body.")}, True),
        # Older, but last updated when it was published before: the lists change, not
        # the sitemap.
        ({"c_en": ("2023-06-01", {"updated": "2024-01-03"}, "Body.")}, False),
    ],
)
def test_the_sitemap_key_changes_exactly_when_the_sitemap_does(
    changes: dict[str, tuple[str, dict[str, str], str] | None], shown: bool
) -> None:
    before, after = plan(corpus()), plan(corpus(**changes))
    assert before != after  # every case changes some page
    files_differ = sitemap_files(before, SITE) != sitemap_files(after, SITE)
    key_differs = sitemap_key(before, SITE) != sitemap_key(after, SITE)
    assert files_differ == key_differs == shown
    # Split into several files, it still holds; and the key names how they are made.
    assert (sitemap_files(before, SITE, 3) != sitemap_files(after, SITE, 3)) == shown
    assert (sitemap_key(before, SITE, 3) != sitemap_key(after, SITE, 3)) == shown
    assert sitemap_key(before, SITE, 3) != sitemap_key(before, SITE)
    assert sitemap_key(before, SITE, version="2") != sitemap_key(before, SITE, version="1")


def test_fingerprints_of_files_parsed_with_known_settings_follow_digests_and_links() -> None:
    """With ``parsed_with`` a statement is its file's digest and identity: a change of
    its body, title or author changes its page, the list page showing it, and the pages
    of its other versions when their links (its title) change; the settings all pages."""
    short = replace(SETTINGS, parsed_with="p1")

    def prints(statements: list[Statement], settings: PageSettings = short) -> dict[str, str]:
        pages = plan(statements, settings)
        return dict(zip((p.path for p in pages), page_fingerprints(pages, settings), strict=True))

    def differ(before: dict[str, str], after: dict[str, str]) -> list[str]:
        return sorted(
            path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
        )

    base = prints(corpus())
    assert prints(corpus()) == base
    body = prints(corpus(a_en=("2024-01-01", {}, "Another body.")))
    assert differ(base, body) == ["en/a/index.html", "en/page/2/index.html"]
    title = prints(corpus(a_ru=("2024-01-01", {"title": "Новое"}, "Тело.")))
    assert differ(base, title) == ["en/a/index.html", "ru/a/index.html", "ru/index.html"]
    author = prints(corpus(c_en=("2024-01-03", {"author": "Someone Else"}, "Body.")))
    assert differ(base, author) == ["en/c/index.html", "en/index.html"]
    # A new language: every page lists the languages.
    assert len(differ(base, prints(corpus(d_fr=("2024-01-04", {}, "Corps."))))) == len(base) + 2
    assert not set(base.values()) & set(prints(corpus(), replace(short, version="v2")).values())
