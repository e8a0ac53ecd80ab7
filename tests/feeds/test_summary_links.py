"""Links in an excerpt stay links in the feed's summary (issue 14): ``type="html"``,
sanitised, still RFC 4287 valid (the RELAX NG schema in ../shared) and read by
feedparser; a summary without links stays plain text, byte for byte as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from statement_feeds.config import load_config
from statement_feeds.feeds.build import Publisher

SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "schema" / "atom.rng"
NS = {"a": "http://www.w3.org/2005/Atom"}
NOW = datetime(2030, 1, 1, tzinfo=UTC)
TOML = """\
[site]
title = "Test"
url = "https://example.org/"
author = "Tester"
default_language = "en"
timezone = "Europe/London"

[paths]
statements = "statements"
output = "public"
state = "state"

[digest]
from = "S <s@example.org>"
"""
LINKED = """\
---
title: Linked
date: 2024-01-02
---

Details on [our site](https://example.org/about?a=1&b=2) and <a href="javascript:alert(1)">js</a>
and [relative](/en/x/) <a href="https://example.org/x" onclick="y()">more</a>.
"""
PLAIN = "---\ntitle: Plain\ndate: 2024-01-01\n---\n\nNo links & <b>bold</b> here.\n"


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    (tmp_path / "statements").mkdir()
    (tmp_path / "statement-feeds.toml").write_text(TOML, encoding="utf-8")
    (tmp_path / "statements" / "linked.md").write_text(LINKED, encoding="utf-8")
    (tmp_path / "statements" / "plain.md").write_text(PLAIN, encoding="utf-8")
    Publisher(load_config(tmp_path / "statement-feeds.toml"), clock=lambda: NOW).build()
    return tmp_path / "public" / "feeds" / "en.atom"


def test_links_in_the_excerpt_are_an_html_summary_and_plain_ones_stay_text(feed: Path) -> None:
    tree = etree.parse(str(feed))
    summaries = {
        e.findtext("a:title", namespaces=NS): e.find("a:summary", NS)
        for e in tree.getroot().iterfind("a:entry", NS)
    }
    linked, plain = summaries["Linked"], summaries["Plain"]
    assert linked is not None and plain is not None
    assert linked.get("type") == "html"
    assert plain.get("type") in (None, "text") and plain.text == "No links & bold here."
    html = linked.text or ""
    assert (
        '<a href="https://example.org/about?a=1&amp;b=2" rel="noopener noreferrer">our site</a>'
        in html
    )
    assert '<a href="https://example.org/x" rel="noopener noreferrer">more</a>' in html
    assert "javascript" not in html and "onclick" not in html and "/en/x/" not in html
    assert "\ue000" not in feed.read_text(encoding="utf-8")

    parsed = feedparser.parse(feed.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    entry = next(e for e in parsed.entries if e.title == "Linked")
    assert entry.summary_detail.type == "text/html"
    assert 'href="https://example.org/about?a=1&amp;b=2"' in entry.summary


def test_a_feed_with_html_summaries_is_valid_rfc4287(feed: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"RFC 4287 RELAX NG schema not found at {SCHEMA}")
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    assert schema.validate(etree.parse(str(feed))), schema.error_log
