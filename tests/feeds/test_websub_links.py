"""``feeds.websub_hubs``: a ``<link rel="hub">`` per hub beside the self link of every
document (subscription feeds and RFC 5005 archives), valid RFC 4287 (the RELAX NG schema
in ../shared/schema), found by feedparser; and the build's list of what it changed,
which the daemon pings the hubs about."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from statement_feeds.config import load_config
from statement_feeds.feeds.build import Publisher

SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "schema" / "atom.rng"
ATOM = "{http://www.w3.org/2005/Atom}"
HUBS = ["https://hub.example.org/", "https://second.example.net/publish"]
NOW = datetime(2030, 1, 1, tzinfo=UTC)
MakeSite = Callable[..., Path]
MakeText = Callable[..., str]


def _site(tmp_path: Path, make_site: MakeSite, statement_md: MakeText, hubs: list[str]) -> Path:
    statements = {
        f"s{n}.en.md": statement_md(title=f"S {n}", date=f"2024-01-{n:02d}") for n in range(1, 8)
    }
    statements["s1.ru.md"] = statement_md(title="Р 1", date="2024-01-01")
    config = make_site(tmp_path / "site", statements=statements, max_entries=3)
    listed = ", ".join(f'"{h}"' for h in hubs)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[feeds]\n", f"[feeds]\nwebsub_hubs = [{listed}]\n"), "utf-8")
    return config


def _build(config: Path) -> list[str]:
    return Publisher(load_config(config), clock=lambda: NOW).build().changed_urls


def _documents(config: Path) -> list[Path]:
    return sorted((config.parent / "public" / "feeds").rglob("*.atom"))


def test_every_document_links_each_hub_right_after_its_self_link(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    config = _site(tmp_path, make_site, statement_md, HUBS)
    _build(config)
    documents = _documents(config)
    assert len(documents) == 2 + 2  # en, ru; en's two full archive pages
    for path in documents:
        root = etree.parse(str(path)).getroot()
        links = [(e.get("rel"), e.get("href")) for e in root.findall(f"{ATOM}link")]
        rels = [rel for rel, _ in links]
        at = rels.index("self")
        assert links[at + 1 : at + 3] == [("hub", h) for h in HUBS], path
        assert rels.count("hub") == len(HUBS)


def test_documents_with_hubs_are_valid_atom(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"RFC 4287 RELAX NG schema not found at {SCHEMA}")
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    config = _site(tmp_path, make_site, statement_md, HUBS)
    _build(config)
    for path in _documents(config):
        assert schema.validate(etree.parse(str(path))), (path, schema.error_log)


def test_feedparser_finds_the_hubs_and_the_self_link(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    config = _site(tmp_path, make_site, statement_md, HUBS)
    _build(config)
    for path in _documents(config):
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        links = parsed.feed.links
        assert [link.href for link in links if link.rel == "hub"] == HUBS
        relative = path.relative_to(config.parent / "public").as_posix()
        assert [link.href for link in links if link.rel == "self"] == [
            f"https://example.org/{relative}"
        ]


def test_no_hub_configured_no_hub_link(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    config = _site(tmp_path, make_site, statement_md, [])
    _build(config)
    for path in _documents(config):
        assert b'rel="hub"' not in path.read_bytes()


def test_changing_the_hubs_rewrites_every_document(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    config = _site(tmp_path, make_site, statement_md, HUBS)
    _build(config)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(HUBS[1], "https://third.example.com/"), encoding="utf-8")
    assert len(_build(config)) == 4
    for path in _documents(config):
        data = path.read_bytes()
        assert b"https://third.example.com/" in data and HUBS[1].encode() not in data


def test_the_build_names_the_self_urls_of_what_it_wrote(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    config = _site(tmp_path, make_site, statement_md, HUBS)
    assert sorted(_build(config)) == [
        "https://example.org/feeds/archive/en/1.atom",
        "https://example.org/feeds/archive/en/2.atom",
        "https://example.org/feeds/en.atom",
        "https://example.org/feeds/ru.atom",
    ]
    assert _build(config) == []  # nothing changed: nothing to ping
    (config.parent / "statements" / "s8.en.md").write_text(
        statement_md(title="S 8", date="2024-01-08"), encoding="utf-8"
    )
    # A new statement changes the subscription feed; full archive pages stay as they are.
    assert _build(config) == ["https://example.org/feeds/en.atom"]
    (config.parent / "statements" / "s2.en.md").write_text(
        statement_md(title="S 2, corrected", date="2024-01-02"), encoding="utf-8"
    )
    assert _build(config) == ["https://example.org/feeds/archive/en/1.atom"]
