"""An output format is one object behind ``feeds.formats.FeedFormat``.

A second format, defined here and nowhere else, is planned, rendered, written,
kept up to date and swept like Atom, and changes nothing in the Atom files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from test_build import NOW, add, md, snapshot, write_config

from statement_feeds.config import Config
from statement_feeds.domain.statements import Statement
from statement_feeds.feeds.atom import ATOM
from statement_feeds.feeds.build import FORMATS, Publisher
from statement_feeds.feeds.formats import Document, FeedFormat, FeedSettings


@dataclass(frozen=True, slots=True)
class Lines:
    """A toy format: one line per entry, its id, title and content."""

    name: str = "lines"
    suffix: str = ".lines"
    media_type: str = "text/plain"
    version: str = "1"

    def render(
        self, document: Document, settings: FeedSettings, html: Callable[[Statement], str]
    ) -> bytes:
        rows = [f"{document.title}\t{document.self_url}"]
        rows += [f"{s.id}\t{s.title}\t{html(s)}" for s in document.entries]
        return "\n".join(rows).encode()


LINES: FeedFormat = Lines()


def site(root: Path) -> Config:
    config = write_config(root, max_entries=2)
    for n in range(1, 6):
        lang = ("en", "ru")[n % 2]
        add(root, f"s{n}.{lang}.md", md(f"Statement {n}", f"2024-01-{n:02d}", f"Body [{n}](x/)."))
    return config


def test_atom_is_the_one_format_registered() -> None:
    assert FORMATS == (ATOM,)
    assert (ATOM.name, ATOM.suffix, ATOM.media_type) == ("atom", ".atom", "application/atom+xml")


def test_a_second_format_is_written_beside_atom_which_stays_byte_identical(tmp_path: Path) -> None:
    atom_only, both = tmp_path / "atom", tmp_path / "both"
    Publisher(site(atom_only), clock=lambda: NOW).build()
    config = site(both)
    report = Publisher(config, clock=lambda: NOW, formats=(ATOM, LINES)).build()

    written = snapshot(both)
    atom = {path: data for path, data in written.items() if path.endswith(".atom")}
    assert atom == {p: d for p, d in snapshot(atom_only).items() if p.endswith(".atom")}
    lines = {path.removesuffix(".lines") for path in written if path.endswith(".lines")}
    assert lines == {path.removesuffix(".atom") for path in atom}  # feeds and archives
    assert "feeds/archive/ru/1.lines" in written  # ru: 3 entries, pages of 2
    en = written["feeds/en.lines"].decode()
    assert en.startswith("Test\thttps://example.org/feeds/en.lines\n")
    assert "https://example.org/en/s4/x/" in en  # content as Atom gets it (spooled)
    assert sorted(f.path for f in report.feeds) == [
        "feeds/en.atom",
        "feeds/en.lines",
        "feeds/ru.atom",
        "feeds/ru.lines",
    ]

    again = Publisher(config, clock=lambda: NOW, formats=(ATOM, LINES)).build()
    assert again.written == 0  # fingerprints cover every format's documents
    (config.paths.statements / "s1.ru.md").unlink()
    (config.paths.statements / "s3.ru.md").unlink()
    gone = Publisher(config, clock=lambda: NOW, formats=(ATOM, LINES)).build()
    assert {"feeds/archive/ru/1.atom", "feeds/archive/ru/1.lines"} <= set(gone.removed)
