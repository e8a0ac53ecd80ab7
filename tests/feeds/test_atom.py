"""The Atom feeds of a small real site, parsed by feedparser and lxml, entry by entry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from statement_feeds.config import Config, load_config
from statement_feeds.feeds.build import Publisher
from statement_feeds.feeds.urls import resolve_urls

ATOM = "http://www.w3.org/2005/Atom"
NS = {"a": ATOM, "fh": "http://purl.org/syndication/history/1.0"}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NOW = datetime(2030, 1, 1, tzinfo=UTC)

TOML = """\
[site]
title = "Socialism From Below"
url = "https://example.org/"
feeds_url = "https://example.org/feeds/"
author = "International Socialist Tendency"
default_language = "en"
timezone = "Europe/London"

[languages.ru]
title = "Социализм снизу"

[paths]
statements = "statements"
output = "public"
state = "state"

[feeds]
max_entries = {max_entries}
excerpt_words = {excerpt_words}

[digest]
from = "Statements <statements@example.org>"
"""

EVIL_BODY = """\
Read <a href="javascript:alert(1)">this</a> and <b onclick="steal()">that</b>.

<script>alert("x")</script>

<iframe src="https://evil.example/"></iframe>

See [the other one](../other/) and ![a picture](pic.png).
"""


def md(title: str, date: str, body: str = "Some words here.", **extra: str) -> str:
    lines = [f"title: {title!r}", f"date: {date!r}", *(f"{k}: {v!r}" for k, v in extra.items())]
    return "---\n" + "\n".join(lines) + "\n---\n\n" + body


def make_site(
    root: Path, statements: dict[str, str], max_entries: int = 50, excerpt_words: int = 100
) -> Config:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in statements.items():
        path = root / "statements" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    config = root / "statement-feeds.toml"
    config.write_text(TOML.format(max_entries=max_entries, excerpt_words=excerpt_words), "utf-8")
    return load_config(config)


SITE = {
    "2020/belarus.en.md": md(
        "Belarus and the struggle", "2020-08-26", "One two three four five six seven."
    ),
    "2020/belarus.ru.md": md("Беларусь и борьба", "2020-08-31", "Раз два три четыре пять шесть."),
    "2020/evil.en.md": md("Evil <markup> & co", "2020-04-01T09:30:00+02:00", EVIL_BODY),
    "2020/refugees.en.md": md(
        "Refugees", "2020-03-02", "Body.", updated="2020-03-05T12:00:00Z", summary="Explicit."
    ),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    Publisher(make_site(root, SITE, excerpt_words=5), clock=lambda: NOW).build()
    return root / "public" / "feeds"


def parsed(feeds: Path, lang: str) -> Any:
    result = feedparser.parse((feeds / f"{lang}.atom").read_bytes())
    assert not result.bozo, result.get("bozo_exception")
    return result


def tree(feeds: Path, lang: str) -> etree._Element:
    return etree.parse(str(feeds / f"{lang}.atom")).getroot()


def test_entries_newest_first_with_titles(site: Path) -> None:
    titles = [e.title for e in parsed(site, "en").entries]
    assert titles == ["Belarus and the struggle", "Evil <markup> & co", "Refugees"]
    assert [e.title for e in parsed(site, "ru").entries] == ["Беларусь и борьба"]


def test_titles_are_plain_text(site: Path) -> None:
    titles = tree(site, "en").findall("a:entry/a:title", NS)
    assert titles[1].text == "Evil <markup> & co"
    assert titles[1].get("type") in (None, "text")


def test_dates_are_published_and_updated(site: Path) -> None:
    entries = tree(site, "en").findall("a:entry", NS)
    dates = [
        (e.findtext("a:published", None, NS), e.findtext("a:updated", None, NS)) for e in entries
    ]
    assert dates == [
        ("2020-08-26T00:00:00+01:00", "2020-08-26T00:00:00+01:00"),  # date alone: site timezone
        ("2020-04-01T09:30:00+02:00", "2020-04-01T09:30:00+02:00"),
        ("2020-03-02T00:00:00+00:00", "2020-03-05T12:00:00+00:00"),
    ]
    first = parsed(site, "en").entries[0]
    assert first.published_parsed[:4] == (2020, 8, 25, 23)  # feedparser gives UTC


def test_ids_are_uuid_urns_and_distinct(site: Path) -> None:
    ids = [e.id for e in parsed(site, "en").entries] + [e.id for e in parsed(site, "ru").entries]
    assert len(set(ids)) == 4
    assert all(i.startswith("urn:uuid:") for i in ids)


def test_id_survives_rename_move_and_retitle(tmp_path: Path) -> None:
    def first_id(root: Path, name: str, title: str) -> str:
        config = make_site(root, {name: md(title, "2020-01-01")})
        Publisher(config, clock=lambda: NOW).build()
        return str(parsed(root / "public" / "feeds", "en").entries[0].id)

    before = first_id(tmp_path / "a", "belarus.md", "Old title")
    after = first_id(tmp_path / "b", "2020/sub/belarus.en.md", "Fixed title")
    other = first_id(tmp_path / "c", "belarus-2.md", "Old title")
    assert before == after
    assert before != other


def test_summary_is_the_excerpt(site: Path) -> None:
    summaries = [e.findtext("a:summary", None, NS) for e in tree(site, "en").findall("a:entry", NS)]
    assert summaries[0] == "One two three four five …"
    assert summaries[2] == "Explicit."
    assert parsed(site, "ru").entries[0].summary == "Раз два три четыре пять …"


def test_content_is_html_and_sanitised(site: Path) -> None:
    content = tree(site, "en").findall("a:entry/a:content", NS)[1]
    assert content.get("type") == "html"
    html = content.text or ""
    assert "<b>that</b>" in html
    for bad in ("<script", "onclick", "javascript:", "<iframe", "steal()", "evil.example"):
        assert bad not in html.lower(), bad


def test_relative_urls_in_content_become_absolute(site: Path) -> None:
    html = tree(site, "en").findall("a:entry/a:content", NS)[1].text or ""
    assert 'href="https://example.org/en/other/"' in html
    assert 'src="https://example.org/en/evil/pic.png"' in html


def test_resolve_urls_touches_only_relative_url_attributes() -> None:
    html = (
        '<p><a href="x/?a=1&amp;b=2" title="y">t href="z"</a> '
        '<a href="mailto:a@b.c">m</a> <img src="https://c.d/e.png" alt=""></p>'
    )
    out = resolve_urls(html, lambda url: "https://h/" + url)
    assert out == html.replace('"x/?a=1&amp;b=2"', '"https://h/x/?a=1&amp;b=2"')


def test_full_statement_link_and_one_hreflang_link_per_translation(site: Path) -> None:
    links = parsed(site, "en").entries[0].links
    assert links[0] == {
        "rel": "alternate",
        "type": "text/html",
        "href": "https://example.org/en/belarus/",
    }
    translations = [link for link in links if "hreflang" in link]
    assert translations == [
        {
            "rel": "alternate",
            "type": "text/html",
            "hreflang": "ru",
            "href": "https://example.org/ru/belarus/",
            "title": "Беларусь и борьба",
        }
    ]
    back = [link for link in parsed(site, "ru").entries[0].links if "hreflang" in link]
    assert [(link["hreflang"], link["href"]) for link in back] == [
        ("en", "https://example.org/en/belarus/")
    ]
    assert all("hreflang" not in link for e in parsed(site, "en").entries[1:] for link in e.links)


def test_entry_links_are_atom_elements_with_all_attributes(site: Path) -> None:
    """feedgen 1.0.0 drops rel/type/hreflang/title on entry links (python-feedgen #135):
    our extension writes them; they must be real Atom-namespace ``link`` elements."""
    entry = tree(site, "en").find("a:entry", NS)
    assert entry is not None
    links = [child for child in entry if etree.QName(child).localname == "link"]
    assert [etree.QName(link).namespace for link in links] == [ATOM, ATOM]
    assert dict(links[1].attrib) == {
        "rel": "alternate",
        "type": "text/html",
        "hreflang": "ru",
        "href": "https://example.org/ru/belarus/",
        "title": "Беларусь и борьба",
    }
    assert dict(links[0].attrib) == {
        "rel": "alternate",
        "type": "text/html",
        "href": "https://example.org/en/belarus/",
    }


def test_feed_metadata(site: Path) -> None:
    root = tree(site, "ru")
    assert root.get(XML_LANG) == "ru"
    assert root.findtext("a:title", None, NS) == "Социализм снизу"
    assert tree(site, "en").findtext("a:title", None, NS) == "Socialism From Below"
    assert root.findtext("a:author/a:name", None, NS) == "International Socialist Tendency"
    generator = root.find("a:generator", NS)
    assert generator is not None
    assert generator.text == "statement-feeds"
    assert generator.get("version")
    links = {
        (link.get("rel"), link.get("type"), link.get("href")) for link in root.findall("a:link", NS)
    }
    assert links == {
        ("self", "application/atom+xml", "https://example.org/feeds/ru.atom"),
        ("alternate", "text/html", "https://example.org/"),
    }
    assert root.find("fh:archive", NS) is None


def test_feed_updated_is_the_newest_entry_updated(site: Path) -> None:
    for lang, expected in (
        ("en", "2020-08-26T00:00:00+01:00"),
        ("ru", "2020-08-31T00:00:00+01:00"),
    ):
        feed = parsed(site, lang)
        assert feed.feed.updated_parsed == max(e.updated_parsed for e in feed.entries)
        assert tree(site, lang).findtext("a:updated", None, NS) == expected


def test_update_newer_than_every_publication_drives_feed_updated(tmp_path: Path) -> None:
    statements = {
        "new.md": md("New", "2021-01-01"),
        "old.md": md("Old", "2020-01-01", updated="2022-06-01T10:00:00Z"),
    }
    Publisher(make_site(tmp_path, statements), clock=lambda: NOW).build()
    root = tree(tmp_path / "public" / "feeds", "en")
    assert root.findtext("a:updated", None, NS) == "2022-06-01T10:00:00+00:00"
    assert [e.findtext("a:title", None, NS) for e in root.findall("a:entry", NS)] == ["New", "Old"]


def test_historic_offset_with_seconds_is_written_in_utc(tmp_path: Path) -> None:
    """Europe/London before 1847 is UTC-00:01:15; RFC 3339 offsets have no seconds."""
    Publisher(make_site(tmp_path, {"old.md": md("Old", "1800-01-01")}), clock=lambda: NOW).build()
    root = tree(tmp_path / "public" / "feeds", "en")
    assert root.findtext("a:entry/a:published", None, NS) == "1800-01-01T00:01:15+00:00"
    assert root.findtext("a:updated", None, NS) == "1800-01-01T00:01:15+00:00"


def test_content_links_keep_only_web_and_mail_schemes() -> None:
    from statement_feeds.domain.markup import render_html

    html = render_html("[a](ftp://x.org/f) [b](tel:+123) [c](https://x.org/) [d](mailto:a@x.org)")
    assert "ftp:" not in html and "tel:" not in html
    assert 'href="https://x.org/"' in html and 'href="mailto:a@x.org"' in html


def _document_with(content: str, summary: str = "Plain summary.") -> bytes:
    from statement_feeds.domain.catalog import build_catalog
    from statement_feeds.domain.statements import Statement
    from statement_feeds.feeds.atom import FeedSettings, plan_feeds, render_document

    moment = datetime(2024, 1, 1, tzinfo=UTC)
    statement = Statement(
        "a.md", "urn:uuid:1", "en", "a", "Title", moment, moment,
        "https://example.org/en/a/", summary, "", "Author", False, "d",
    )  # fmt: skip
    settings = FeedSettings("Site", "https://example.org/", "https://example.org/feeds/",
                            "Author", {}, 10, "1")  # fmt: skip
    (document,) = plan_feeds(build_catalog([statement], [], NOW), settings)
    return render_document(document, settings, lambda s: content)


@pytest.mark.parametrize(
    "bad", ["\x01", "\x0b", "\x1f", "\ufffe", "\uffff"], ids=["soh", "vt", "us", "fffe", "ffff"]
)
def test_characters_xml_cannot_carry_are_removed_from_content_and_summary(bad: str) -> None:
    data = _document_with(f"<p>be{bad}fore</p>", summary=f"sum{bad}mary")
    root = etree.fromstring(data)  # strict XML parser: would refuse them
    entry = root.find("a:entry", NS)
    assert entry is not None
    assert entry.findtext("a:content", namespaces=NS) == "<p>before</p>"
    assert entry.findtext("a:summary", namespaces=NS) == "summary"
    assert bad.encode() not in data


def test_clean_text_is_rendered_in_one_pass_with_the_same_bytes() -> None:
    clean = _document_with("<p>before</p>", summary="summary")
    dirty = _document_with("<p>be\x01fore</p>", summary="sum\ufffemary")
    assert clean == dirty  # the second pass removes exactly what the first refused


@pytest.mark.parametrize(
    "html",
    [
        '<p><a href="rel/">r</a></p>',
        '<p>said href="x" and <a href="../up">u</a></p>',
        '<p><a href="https://a/">a</a> <img src="pic.png" alt=""></p>',
        '<blockquote cite="/source"><p>q</p></blockquote>',
    ],
)
def test_every_relative_url_is_resolved_whatever_else_the_html_holds(html: str) -> None:
    out = resolve_urls(html, lambda url: "https://h/" + url.lstrip("./"))
    assert out != html
    assert 'href="rel/"' not in out and 'src="pic.png"' not in out
    assert 'cite="/source"' not in out and 'href="../up"' not in out


def test_html_with_only_absolute_urls_is_returned_as_it_is() -> None:
    html = '<p>said href="https://x" <a href="mailto:a@b.c">m</a> <img src="http://i/p.png"></p>'
    assert resolve_urls(html, lambda url: "https://h/" + url) is html
