"""The HTML pages `build` writes (feeds/pages.py), on real folders: what the feeds link to
exists and agrees with them, every page is valid HTML5 (html5lib, strict), pages are
written like the feeds (identical bytes, only when changed), removed when their statement
goes, held back while embargoed, and a broken template is a clear error."""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import html5lib
import pytest
from click.testing import CliRunner
from lxml import etree

from conftest import statement_md, write_site
from statement_feeds.cli import cli
from statement_feeds.config import Config, load_config
from statement_feeds.errors import ConfigError
from statement_feeds.feeds.build import BuildReport, Publisher
from statement_feeds.feeds.cache import BuildCache

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "site"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
SITE = "https://example.org/"
HTML = "{http://www.w3.org/1999/xhtml}"
SITEMAP = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9", "x": "http://www.w3.org/1999/xhtml"}


def build(config: Config, now: datetime = NOW) -> BuildReport:
    return Publisher(config, clock=lambda: now).build()


def site(root: Path, statements: dict[str, str], extra: str = "", **options: Any) -> Config:
    return load_config(write_site(root, statements, extra_toml=extra, **options))


def pages(output: Path) -> dict[str, bytes]:
    return {
        p.relative_to(output).as_posix(): p.read_bytes()
        for p in sorted(output.rglob("*"))
        if p.is_file() and "feeds" not in p.relative_to(output).parts
    }


def parse(data: bytes) -> Any:
    """Strict HTML5 parsing: any parse error (not just a crash) fails the test."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True)
    return parser.parse(data.decode("utf-8"))


def text(element: Any) -> str:
    return " ".join("".join(element.itertext()).split())


def find(tree: Any, path: str) -> list[Any]:
    return list(tree.iter(HTML + path))


def head_links(tree: Any, rel: str) -> list[dict[str, str]]:
    return [dict(link.attrib) for link in find(tree, "link") if link.get("rel") == rel]


def meta(tree: Any, name: str) -> str:
    for element in find(tree, "meta"):
        if name in (element.get("property"), element.get("name")):
            return str(element.get("content"))
    raise AssertionError(f"no meta {name}")


def local(url: str, output: Path) -> Path:
    assert url.startswith(SITE), url
    return output / url.removeprefix(SITE) / "index.html"


@pytest.fixture
def example(tmp_path: Path) -> Config:
    root = tmp_path / "site"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("public", "state", "outbox"))
    text_ = (root / "statement-feeds.toml").read_text("utf-8")
    (root / "statement-feeds.toml").write_text(
        text_.replace('subscribers = "../../subscribers"', 'subscribers = "subscribers"'), "utf-8"
    )
    (root / "subscribers").mkdir()
    config = load_config(root / "statement-feeds.toml")
    assert not build(config).problems
    return config


def test_every_feed_entry_links_to_a_written_page_that_agrees(example: Config) -> None:
    output = example.paths.output
    checked = 0
    for feed_file in sorted((output / "feeds").glob("*.atom")):
        feed = feedparser.parse(feed_file.read_bytes())
        assert not feed.bozo, feed.bozo_exception
        for entry in feed.entries:
            link = next(
                x["href"] for x in entry.links if x["rel"] == "alternate" and "hreflang" not in x
            )
            page = local(link, output)
            assert page.is_file(), f"{link}: no page at {page}"
            tree = parse(page.read_bytes())
            assert text(find(tree, "h1")[0]) == entry.title
            assert text(find(tree, "title")[0]) == entry.title
            assert tree.get("lang") == feed.feed.language
            time_ = find(find(tree, "main")[0], "time")[0]
            assert datetime.fromisoformat(time_.get("datetime")) == datetime.fromisoformat(
                entry.published
            )
            assert [x["href"] for x in head_links(tree, "canonical")] == [link]
            # The excerpt is the description a shared link shows.
            assert meta(tree, "og:description")[:40] == " ".join(entry.summary.split())[:40]
            checked += 1
    assert checked == 4


def test_every_page_of_the_example_is_strict_html5_with_landmarks_and_ordered_headings(
    example: Config,
) -> None:
    written = pages(example.paths.output)
    assert sorted(written) == [
        "en/belarus/index.html",
        "en/coronavirus/index.html",
        "en/index.html",
        "en/refugees/index.html",
        "index.html",
        "robots.txt",
        "ru/belarus/index.html",
        "ru/index.html",
        "sitemap.xml",
    ]
    for name, data in written.items():
        if not name.endswith(".html"):
            continue
        tree = parse(data)
        assert b"<script" not in data, name
        for landmark in ("header", "main", "footer", "nav"):
            assert find(tree, landmark), (name, landmark)
        levels = [
            int(e.tag[-1]) for e in tree.iter() if e.tag in {f"{HTML}h{n}" for n in range(1, 7)}
        ]
        assert levels[0] == 1 and levels.count(1) == 1, (name, levels)
        assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), (name, levels)
        for a in find(tree, "a"):
            assert text(a), (name, "a link without text")


def test_the_language_page_is_the_seeds_statements_page(example: Config) -> None:
    tree = parse((example.paths.output / "en/index.html").read_bytes())
    articles = find(tree, "article")
    feed = feedparser.parse((example.paths.output / "feeds/en.atom").read_bytes())
    assert [text(find(a, "h2")[0]) for a in articles] == [e.title for e in feed.entries]
    first = articles[0]
    assert text(find(first, "time")[0]) == "August 26, 2020"
    links = find(first, "a")
    assert [text(a) for a in links] == [
        "Belarus and the struggle against Lukashenko",
        "Full statement: Belarus and the struggle against Lukashenko",
    ]
    assert {a.get("href") for a in links} == {SITE + "en/belarus/"}
    feeds = head_links(tree, "alternate")
    assert {"type": "application/atom+xml"}.items() <= next(
        x for x in feeds if x.get("type")
    ).items()
    assert {(x.get("hreflang"), x["href"]) for x in feeds if not x.get("type")} == {
        ("en", SITE + "en/"),
        ("ru", SITE + "ru/"),
        ("x-default", SITE),
    }
    ru = parse((example.paths.output / "ru/index.html").read_bytes())
    assert text(find(ru, "time")[0]) == "31 августа 2020 г."
    assert "Полный текст заявления" in text(find(ru, "main")[0])


def test_statement_head_tags_translations_and_opengraph(example: Config) -> None:
    tree = parse((example.paths.output / "ru/belarus/index.html").read_bytes())
    assert (tree.get("lang"), tree.get("dir")) == ("ru", "ltr")
    alternates = {(x.get("hreflang"), x["href"]) for x in head_links(tree, "alternate")}
    assert {
        ("en", SITE + "en/belarus/"),
        ("ru", SITE + "ru/belarus/"),
        ("x-default", SITE + "en/belarus/"),
        ("ru", SITE + "feeds/ru.atom"),
    } == alternates
    assert meta(tree, "og:url") == SITE + "ru/belarus/"
    assert meta(tree, "og:locale") == "ru_RU"
    assert meta(tree, "og:type") == "article"
    assert meta(tree, "twitter:card") == "summary"
    assert meta(tree, "og:title") == meta(tree, "twitter:title")
    translations = [
        a for a in find(tree, "a") if a.get("hreflang") == "en" and "belarus" in a.get("href")
    ]
    assert translations, "no link to the English version"


def test_arabic_is_right_to_left_and_pagination_links_pages(tmp_path: Path) -> None:
    statements = {
        f"s{n}.ar.md": statement_md(
            title=f"بيان {n}", date=f"2024-01-{n:02d}", translation_key=f"s{n}"
        )
        for n in range(1, 6)
    }
    statements["s1.en.md"] = statement_md(
        title="Statement 1", date="2024-01-01", translation_key="s1"
    )
    config = site(tmp_path, statements, extra="\n[pages]\nper_page = 2\n")
    build(config)
    output = config.paths.output
    written = pages(output)
    assert {"ar/index.html", "ar/page/2/index.html", "ar/page/3/index.html"} <= set(written)
    assert "ar/page/4/index.html" not in written
    first, second, last = (parse(written[f"ar/{p}index.html"]) for p in ("", "page/2/", "page/3/"))
    assert (first.get("lang"), first.get("dir")) == ("ar", "rtl")
    assert [text(find(a, "h2")[0]) for a in find(first, "article")] == ["بيان 5", "بيان 4"]
    assert [text(find(a, "h2")[0]) for a in find(last, "article")] == ["بيان 1"]
    rels = {a.get("rel"): a.get("href") for a in find(second, "a") if a.get("rel")}
    assert rels == {"prev": SITE + "ar/", "next": SITE + "ar/page/3/"}
    assert [x["href"] for x in head_links(second, "canonical")] == [SITE + "ar/page/2/"]
    statement = parse(written["ar/s1/index.html"])
    assert statement.get("dir") == "rtl"
    assert meta(statement, "og:locale") == "ar_EG"
    for data in written.values():
        if data.startswith(b"<!DOCTYPE"):
            parse(data)


def test_sitemap_has_every_page_with_alternates_and_robots_names_it(example: Config) -> None:
    output = example.paths.output
    root = etree.fromstring((output / "sitemap.xml").read_bytes())
    urls = {
        u.findtext("s:loc", namespaces=SITEMAP): {
            (x.get("hreflang"), x.get("href")) for x in u.findall("x:link", SITEMAP)
        }
        for u in root.findall("s:url", SITEMAP)
    }
    html_pages = [n for n in pages(output) if n.endswith("index.html")]
    assert len(urls) == len(html_pages)
    assert urls[SITE + "en/belarus/"] == {
        ("en", SITE + "en/belarus/"),
        ("ru", SITE + "ru/belarus/"),
        ("x-default", SITE + "en/belarus/"),
    }
    assert urls[SITE] >= {("en", SITE + "en/"), ("ru", SITE + "ru/"), ("x-default", SITE)}
    robots = (output / "robots.txt").read_text("utf-8")
    assert f"Sitemap: {SITE}sitemap.xml" in robots.splitlines()


def test_identical_input_gives_identical_bytes_and_a_rebuild_writes_nothing(tmp_path: Path) -> None:
    statements = {
        "a.en.md": statement_md(title="A", date="2024-01-01"),
        "a.ru.md": statement_md(title="А", date="2024-01-01"),
        "b.en.md": statement_md(title="B", date="2024-01-02", updated="2024-02-01"),
    }
    first = site(tmp_path / "one", statements)
    second = site(tmp_path / "two", statements)
    build(first)
    build(second)
    assert pages(first.paths.output) == pages(second.paths.output)
    times = {p: p.stat().st_mtime_ns for p in first.paths.output.rglob("*.html")}
    report = build(first)
    assert report.pages.written == [] and report.pages.removed == []
    assert {p: p.stat().st_mtime_ns for p in first.paths.output.rglob("*.html")} == times
    sitemap = (first.paths.output / "sitemap.xml").read_bytes()
    (first.paths.output / "sitemap.xml").unlink()
    (first.paths.output / "en/a/index.html").unlink()
    report = build(first)
    assert sorted(report.pages.written) == ["en/a/index.html", "sitemap.xml"]
    assert pages(first.paths.output) == pages(second.paths.output)
    assert (first.paths.output / "sitemap.xml").read_bytes() == sitemap
    corrected = parse((first.paths.output / "en/b/index.html").read_bytes())
    assert "corrected on February 1, 2024" in text(find(corrected, "main")[0])


def test_a_changed_statement_rewrites_only_its_pages(tmp_path: Path) -> None:
    config = site(
        tmp_path,
        {f"s{n}.md": statement_md(title=f"S{n}", date=f"2024-01-0{n}") for n in range(1, 4)},
    )
    build(config)
    (config.paths.statements / "s1.md").write_text(
        statement_md(title="S1 fixed", date="2024-01-01"), "utf-8"
    )
    report = build(config)
    assert sorted(report.pages.written) == ["en/index.html", "en/s1/index.html"]


def test_removed_unpublished_and_own_url_statements_lose_their_pages(tmp_path: Path) -> None:
    config = site(
        tmp_path,
        {
            "gone.md": statement_md(title="Gone", date="2024-01-01"),
            "draft.md": statement_md(title="Draft", date="2024-01-02"),
            "moved.md": statement_md(title="Moved", date="2024-01-03"),
            "kept.md": statement_md(title="Kept", date="2024-01-04"),
        },
    )
    build(config)
    output = config.paths.output
    (output / "mine.html").write_text("not the build's", "utf-8")
    (output / "en" / "gone" / "notes.txt").write_text("not the build's either", "utf-8")
    assert {"en/gone/index.html", "en/draft/index.html", "en/moved/index.html"} <= set(
        pages(output)
    )
    folder = config.paths.statements
    (folder / "gone.md").unlink()
    (folder / "draft.md").write_text(statement_md(title="Draft", date="2024-01-02", draft="true"))
    (folder / "moved.md").write_text(
        statement_md(title="Moved", date="2024-01-03", url="https://elsewhere.example/moved")
    )
    report = build(config)
    assert sorted(report.pages.removed) == [
        "en/draft/index.html",
        "en/gone/index.html",
        "en/moved/index.html",
    ]
    left = pages(output)
    assert "en/kept/index.html" in left and "mine.html" in left
    assert not (output / "en" / "draft").exists() and not (output / "en" / "moved").exists()
    assert (output / "en" / "gone" / "notes.txt").is_file()  # never deleted: not ours
    index = parse(left["en/index.html"])
    hrefs = [a.get("href") for a in find(index, "a")]
    assert "https://elsewhere.example/moved" in hrefs  # listed, linking to its own url
    assert SITE + "en/draft/" not in hrefs


def test_an_embargoed_statement_gets_its_page_at_its_time(tmp_path: Path) -> None:
    config = site(
        tmp_path,
        {
            "now.md": statement_md(title="Now", date="2024-01-01"),
            "later.md": statement_md(title="Later", date="2024-06-01T12:00:00+00:00"),
        },
    )
    build(config, datetime(2024, 6, 1, 11, 59, 59, tzinfo=UTC))
    output = config.paths.output
    assert not (output / "en/later/index.html").exists()
    assert b"Later" not in (output / "en/index.html").read_bytes()
    assert b"/en/later/" not in (output / "sitemap.xml").read_bytes()
    build(config, datetime(2024, 6, 1, 12, 0, tzinfo=UTC))
    assert (output / "en/later/index.html").is_file()
    assert b"Later" in (output / "en/index.html").read_bytes()


def test_pages_can_be_turned_off_which_removes_them(tmp_path: Path) -> None:
    statements = {"a.md": statement_md(title="A", date="2024-01-01")}
    config = site(tmp_path, statements)
    build(config)
    assert (config.paths.output / "en/a/index.html").is_file()
    off = site(tmp_path, statements, extra="\n[pages]\nenabled = false\n")
    report = build(off)
    assert pages(off.paths.output) == {}
    assert "en/a/index.html" in report.pages.removed
    assert (off.paths.output / "feeds/en.atom").is_file()


def test_the_strict_parser_does_fail_on_invalid_html() -> None:
    with pytest.raises(html5lib.html5parser.ParseError):
        parse(b"<!DOCTYPE html><html lang=en><title>x</title><p><table><p>x</table>")


_SYNTAX = "{% extends 'pages/base.html' %}{% block main %}{% if %}{% endblock %}"
_RUNTIME = "{% extends 'pages/base.html' %}\n{% block main %}\n{{ nothing.here }}\n{% endblock %}"


@pytest.mark.parametrize(
    ("template", "expected", "count"),
    [
        (_SYNTAX, "statement.html:1", 1),
        (_RUNTIME, "statement.html:3", 1),
        (_RUNTIME, "statement.html:3", 40),  # rendered in worker processes
        (_RUNTIME, "statement.html:3", 80),  # staged (render._STAGE_FROM): none left over
    ],
)
def test_a_broken_page_template_is_a_clear_error_after_the_feeds(
    tmp_path: Path, template: str, expected: str, count: int
) -> None:
    templates = tmp_path / "templates"
    (templates / "pages").mkdir(parents=True)
    (templates / "pages" / "statement.html").write_text(template, "utf-8")
    statements = {f"s{n}.md": statement_md(title=f"S{n}", date="2024-01-01") for n in range(count)}
    path = write_site(tmp_path, {"a.md": statement_md(title="A", date="2024-01-01"), **statements})
    text_ = path.read_text("utf-8")
    text_ = text_.replace(
        text_.split("templates = ")[1].split("\n")[0], f'"{templates.as_posix()}"'
    )
    path.write_text(text_, "utf-8")
    config = load_config(path)
    with pytest.raises(ConfigError) as raised:
        build(config)
    message = str(raised.value)
    assert expected in message and "paths.templates" in message
    assert "fix that file, or delete it" in message
    assert (config.paths.output / "feeds/en.atom").is_file()
    assert not list(config.paths.output.rglob("*.tmp"))  # no staged or temp file left
    result = CliRunner().invoke(cli, ["--config", str(path), "build"])
    assert result.exit_code == 2 and expected in result.output
    # Fixed: the next build writes the pages.
    (templates / "pages" / "statement.html").unlink()
    report = build(config)
    assert (config.paths.output / "en/a/index.html").is_file()
    assert len(report.pages.written) > count and not list(config.paths.output.rglob("*.tmp"))


def test_check_tries_the_page_templates_and_writes_nothing(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "pages").mkdir(parents=True)
    (templates / "pages" / "index.html").write_text(_RUNTIME, "utf-8")
    path = write_site(tmp_path, {"a.md": statement_md(title="A", date="2024-01-01")})
    text_ = path.read_text("utf-8")
    text_ = text_.replace(
        text_.split("templates = ")[1].split("\n")[0], f'"{templates.as_posix()}"'
    )
    path.write_text(text_, "utf-8")
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert result.exit_code == 2 and "pages/index.html:3" in result.output
    (templates / "pages" / "index.html").unlink()
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "public").exists()


def test_the_bodys_headings_stay_below_the_title(tmp_path: Path) -> None:
    body = "# Part one\n\nText.\n\n## Detail\n\nMore.\n\n###### Deep\n\n<h1>raw</h1>\n"
    config = site(tmp_path, {"a.md": statement_md(title="A", date="2024-01-01", body=body)})
    build(config)
    tree = parse((config.paths.output / "en/a/index.html").read_bytes())
    headings = [(e.tag.removeprefix(HTML), text(e)) for e in tree.iter() if e.tag[-2:-1] == "h"]
    assert [h for h in headings if h[0] in {"h1", "h2", "h3", "h6"}][:4] == [
        ("h1", "A"),
        ("h2", "Part one"),
        ("h3", "Detail"),
        ("h6", "Deep"),
    ]
    feed = (config.paths.output / "feeds/en.atom").read_text("utf-8")
    assert "&lt;h1&gt;Part one&lt;/h1&gt;" in feed  # the feed keeps the author's levels


def test_the_sitemap_is_made_again_only_when_what_it_shows_changed(tmp_path: Path) -> None:
    statements = {
        "a.en.md": statement_md(title="A", date="2024-01-01"),
        "b.en.md": statement_md(title="B", date="2024-01-02"),
    }
    config = site(tmp_path / "site", statements)
    build(config)
    sitemap = config.paths.output / "sitemap.xml"
    stale = sitemap.read_bytes().replace(b"<urlset", b"<!-- as it was --><urlset", 1)
    sitemap.write_bytes(stale)  # another file, as an older build could have left it
    # A new title and body: the statement's pages are written, the sitemap (URLs, dates,
    # alternates) shows nothing of them and is not made again.
    edited = statement_md(title="A, fixed", date="2024-01-01", body="Another body.\n")
    (config.paths.statements / "a.en.md").write_text(edited, "utf-8")
    report = build(config)
    assert sorted(report.pages.written) == ["en/a/index.html", "en/index.html"]
    assert sitemap.read_bytes() == stale
    # A correction date is the page's lastmod: the sitemap is made again, as a new site's.
    corrected = statement_md(title="A, fixed", date="2024-01-01", updated="2024-02-01")
    (config.paths.statements / "a.en.md").write_text(corrected, "utf-8")
    report = build(config)
    assert "sitemap.xml" in report.pages.written and "robots.txt" not in report.pages.written
    fresh = site(tmp_path / "fresh", {**statements, "a.en.md": corrected})
    build(fresh)
    assert sitemap.read_bytes() == (fresh.paths.output / "sitemap.xml").read_bytes()
    assert b"<lastmod>2024-02-01" in sitemap.read_bytes()


@pytest.mark.parametrize("entry", ["page:sitemap.xml", "page:robots.txt", "page:en/a/index.html"])
@pytest.mark.parametrize("value", ["0" * 32, "not a fingerprint", None])
def test_an_old_or_damaged_cache_entry_makes_its_file_again(
    tmp_path: Path, entry: str, value: str | None
) -> None:
    """A cache entry that does not match (an older version's key, garbage, none at all)
    makes its file again; the others are left as they are."""
    statements = {"a.en.md": statement_md(title="A", date="2024-01-01")}
    config = site(tmp_path / "site", statements)
    build(config)
    output = config.paths.output
    good = pages(output)
    for name in ("sitemap.xml", "robots.txt", "en/a/index.html", "en/index.html"):
        (output / name).write_bytes(good[name] + b"\n<!-- damaged -->")
    with BuildCache(config.paths.state / "cache.sqlite") as cache:
        entries = cache.fingerprints()
        assert entry in entries
        if value is None:
            del entries[entry]
        else:
            entries[entry] = value
        cache.store_fingerprints(entries)
    report = build(config)
    path = entry.removeprefix("page:")
    # The sitemap and robots.txt share their key: one entry wrong makes both again.
    remade = ["robots.txt", "sitemap.xml"] if path in ("sitemap.xml", "robots.txt") else [path]
    assert sorted(report.pages.written) == remade
    after = pages(output)
    for name in ("sitemap.xml", "robots.txt", "en/a/index.html", "en/index.html"):
        assert (after[name] == good[name]) == (name in remade), name
    assert build(config).pages.written == []
