"""Every produced document (subscription feeds and RFC 5005 archives) against the RFC 4287
RELAX NG schema, plus the W3C feed validator's checks we can reproduce offline.

The schema lives beside the repository checkout: ``../shared/schema/atom.rng``.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from statement_feeds.config import load_config
from statement_feeds.feeds.build import Publisher

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "schema" / "atom.rng"
NS = {"a": "http://www.w3.org/2005/Atom", "fh": "http://purl.org/syndication/history/1.0"}
NOW = datetime(2030, 1, 1, tzinfo=UTC)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
IRI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s<>\"{}|\\^`]+$")

TOML = """\
[site]
title = "Test"
url = "https://example.org/"
feeds_url = "https://example.org/feeds/"
author = "Tester"
default_language = "en"
timezone = "Europe/London"

[paths]
statements = "statements"
output = "public"
state = "state"

[feeds]
max_entries = 3
websub_hubs = ["https://hub.example.org/", "https://pubsubhubbub.example.net/publish"]

[digest]
from = "S <s@example.org>"
"""

HOSTILE = """\
<div onmouseover="x()" style="color:red">Raw <script>alert(1)</script> HTML</div>

[relative](/en/x/) ![img](a.png) <a href="javascript:void(0)">js</a> <iframe src="//e"></iframe>

Control \x0b chars & <em>entities</em> &amp; more.
"""


def md(title: str, date: str, body: str = "Words.") -> str:
    return f"---\ntitle: {title!r}\ndate: {date!r}\n---\n\n{body}\n"


@pytest.fixture(scope="module")
def schema() -> etree.RelaxNG:
    if not SCHEMA.is_file():
        pytest.skip(
            f"RFC 4287 RELAX NG schema not found at {SCHEMA} (clone ../shared beside the repo)"
        )
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The example site, and a site with archives, translations and hostile content."""
    example = tmp_path_factory.mktemp("example")
    shutil.copytree(REPO / "examples" / "site" / "statements", example / "statements")
    shutil.copy(REPO / "examples" / "site" / "statement-feeds.toml", example)
    Publisher(load_config(example / "statement-feeds.toml"), clock=lambda: NOW).build()

    site = tmp_path_factory.mktemp("archives")
    (site / "statements").mkdir()
    (site / "statement-feeds.toml").write_text(TOML, encoding="utf-8")
    for n in range(1, 11):
        (site / "statements" / f"s{n}.md").write_text(md(f"S {n}", f"2024-01-{n:02d}"), "utf-8")
        (site / "statements" / f"s{n}.pt-BR.md").write_text(
            md(f"P {n}", f"2024-01-{n:02d}"), "utf-8"
        )
    (site / "statements" / "s10.ru.md").write_text(md("Р <&>", "2024-02-01", HOSTILE), "utf-8")
    (site / "statements" / "old.md").write_text(md("Old", "1800-01-01", HOSTILE), "utf-8")
    Publisher(load_config(site / "statement-feeds.toml"), clock=lambda: NOW).build()

    found = sorted((example / "public").rglob("*.atom")) + sorted((site / "public").rglob("*.atom"))
    assert len(found) == 2 + 4 + 4 + 1  # example en, ru; en and pt-BR with 3 archives each; ru
    return found


def _name(path: Path) -> str:
    return "/".join(path.parts[-3:])


def test_every_document_is_valid_rfc4287(schema: etree.RelaxNG, documents: list[Path]) -> None:
    failures = {}
    for path in documents:
        if not schema.validate(etree.parse(str(path))):
            failures[_name(path)] = [str(e) for e in schema.error_log]
    assert not failures


def test_archives_are_among_the_validated_documents(documents: list[Path]) -> None:
    archives = [p for p in documents if etree.parse(str(p)).find("fh:archive", NS) is not None]
    assert len(archives) == 6


def test_the_schema_rejects_a_broken_document(schema: etree.RelaxNG, documents: list[Path]) -> None:
    """The check can fail: drop the required atom:id from a produced document."""
    tree = etree.parse(str(documents[0]))
    feed_id = tree.getroot().find("a:id", NS)
    assert feed_id is not None
    tree.getroot().remove(feed_id)
    assert not schema.validate(tree)


# --- what the W3C feed validator checks, reproduced offline --------------------------------


def _roots(documents: list[Path]) -> list[tuple[Path, etree._Element]]:
    return [(path, etree.parse(str(path)).getroot()) for path in documents]


def test_ids_are_absolute_iris(documents: list[Path]) -> None:
    for path, root in _roots(documents):
        for element in root.iterfind(".//a:id", NS):
            assert IRI.match(element.text or ""), (_name(path), element.text)


def test_self_link_is_the_document_url(documents: list[Path]) -> None:
    for path, root in _roots(documents):
        self_links = [link.get("href") for link in root.findall("a:link[@rel='self']", NS)]
        relative = "/".join(path.parts[path.parts.index("feeds") + 1 :])
        assert self_links == ["https://example.org/feeds/" + relative], _name(path)


def test_no_duplicate_alternate_links(documents: list[Path]) -> None:
    for path, root in _roots(documents):
        for parent in [root, *root.findall("a:entry", NS)]:
            keys = [
                (link.get("type"), link.get("hreflang"))
                for link in parent.findall("a:link", NS)
                if link.get("rel", "alternate") == "alternate"
            ]
            assert len(keys) == len(set(keys)), (_name(path), keys)


def test_dates_are_rfc3339(documents: list[Path]) -> None:
    for path, root in _roots(documents):
        for element in root.iterfind(".//a:updated", NS):
            assert RFC3339.match(element.text or ""), (_name(path), element.text)
        for element in root.iterfind(".//a:published", NS):
            assert RFC3339.match(element.text or ""), (_name(path), element.text)


def test_content_has_no_relative_urls_and_nothing_dangerous(documents: list[Path]) -> None:
    url = re.compile(r"""\s(?:href|src|cite)=["']([^"']*)["']""")
    for path, root in _roots(documents):
        for content in root.iterfind("a:entry/a:content", NS):
            html = content.text or ""
            for ref in url.findall(html):
                assert re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", ref), (_name(path), ref)
            for bad in ("<script", "<iframe", "onmouseover", "style=", "javascript:"):
                assert bad not in html, (_name(path), bad)


def test_every_archive_has_current_and_an_archive_link(documents: list[Path]) -> None:
    """The validator warns ``MissingCurrentInArchive`` and ``ArchiveIncomplete`` otherwise."""
    for path, root in _roots(documents):
        if root.find("fh:archive", NS) is None:
            continue
        rels = {link.get("rel") for link in root.findall("a:link", NS)}
        assert "current" in rels, _name(path)
        assert rels & {"prev-archive", "next-archive"}, _name(path)


def test_every_entry_has_author_summary_and_alternate(documents: list[Path]) -> None:
    for path, root in _roots(documents):
        assert root.find("a:author/a:name", NS) is not None, _name(path)
        for entry in root.iterfind("a:entry", NS):
            assert entry.find("a:summary", NS) is not None
            assert entry.find("a:link[@rel='alternate']", NS) is not None, _name(path)
