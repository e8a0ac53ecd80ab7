"""Site-relative statement urls (``url: /ru/statements/x/``, as Hugo and Jekyll users
write them) resolve against site.url in a real build; other non-absolute urls are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statement_feeds.config import Config, load_config
from statement_feeds.domain.statement_fields import on_site
from statement_feeds.feeds.build import BuildReport, Publisher

TOML = """\
[site]
title = "Test"
url = "{site_url}"
feeds_url = "https://example.org/feeds/"
author = "Tester"
default_language = "en"
timezone = "UTC"

[paths]
statements = "statements"
output = "public"
state = "state"

[digest]
from = "S <s@example.org>"
"""


def site(root: Path, statements: dict[str, str], site_url: str) -> Config:
    path = root / "statement-feeds.toml"
    path.write_text(TOML.format(site_url=site_url), "utf-8")
    for name, url in statements.items():
        folder = root / "statements"
        folder.mkdir(exist_ok=True)
        text = f"---\ntitle: {name}\ndate: 2024-01-01\nurl: {url}\n---\n\nBody.\n"
        (folder / f"{name}.md").write_text(text, "utf-8")
    return load_config(path)


def build(config: Config) -> BuildReport:
    return Publisher(config, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC)).build()


def links(root: Path) -> dict[str, str]:
    feed = feedparser.parse((root / "public" / "feeds" / "en.atom").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    return {entry.title: entry.link for entry in feed.entries}


@pytest.mark.parametrize(
    ("site_url", "url", "expected"),
    [
        (
            "https://example.org/",
            "/ru/statements/belarus/",
            "https://example.org/ru/statements/belarus/",
        ),
        # urljoin's rule, and what the site's own "/..." links mean: from the host's root.
        ("https://example.org/org/", "/ru/x/", "https://example.org/ru/x/"),
        ("https://example.org/", "/a/../b/?q=1#top", "https://example.org/b/?q=1#top"),
        ("https://example.org/", "https://other.example/x/", "https://other.example/x/"),
    ],
)
def test_site_relative_url_is_the_entry_link(
    tmp_path: Path, site_url: str, url: str, expected: str
) -> None:
    report = build(site(tmp_path, {"belarus": url}, site_url))
    assert not report.problems, [str(p) for p in report.problems]
    assert links(tmp_path) == {"belarus": expected}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("//evil.example/x/", "'url' may not start with '//'"),
        ("javascript:alert(1)", "'url' must be an absolute http(s) URL or a path"),
        ("belarus", "'url' must be an absolute http(s) URL or a path"),
        ("ftp://example.org/x", "'url' must be an absolute http(s) URL or a path"),
        ('"/ru/x y/"', "'url' must be an absolute http(s) URL or a path"),
    ],
)
def test_other_relative_urls_are_refused_with_file_line_and_fix(
    tmp_path: Path, url: str, message: str
) -> None:
    report = build(site(tmp_path, {"bad": url, "good": "/en/good/"}, "https://example.org/"))
    [problem] = report.problems
    assert str(problem).startswith(f"bad.md:4: {message}")
    assert "/en/x/" in problem.hint
    assert links(tmp_path) == {"good": "https://example.org/en/good/"}


@given(
    st.sampled_from(["https://example.org/", "https://example.org/org/", "http://h:8080/a/b/"]),
    st.lists(st.sampled_from(["a", "b", ".", "..", "", "ru"]), max_size=8),
    st.sampled_from(["", "?q=1", "#top", "?q=/../x#f"]),
)
def test_on_site_is_urljoin_for_a_path_from_the_root(
    site_url: str, segments: list[str], tail: str
) -> None:
    path = "/" + "/".join(segments) + tail
    if path.startswith("//"):
        return  # refused before joining: another host
    assert on_site(site_url, path) == urljoin(site_url, path)
