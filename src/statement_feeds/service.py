"""The one place that joins the pure core to the I/O adapters.

``Publisher.build`` is the data path of a feed build::

    adapters.files.read_sources → core.statements.parse_statement (cached by content)
    → core.catalog.build_catalog → core.feeds.plan_feeds → core.feeds.render_document
    → adapters.output.write_if_changed
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from urllib.parse import urljoin

from . import __version__
from .adapters.cache import BuildCache
from .adapters.files import SourceFile, read_sources
from .adapters.output import remove_stale, write_if_changed
from .clock import Clock, system_clock
from .config import Config
from .core.catalog import Catalog, build_catalog
from .core.feeds import Document, FeedSettings, plan_feeds, render_document, resolve_urls
from .core.markup import render_html
from .core.problems import Problem
from .core.statements import PARSER_VERSION, SiteDefaults, Statement, parse_statement

__all__ = ["BuildReport", "FeedReport", "Publisher", "feed_settings", "site_defaults"]


@dataclass(frozen=True, slots=True)
class FeedReport:
    lang: str
    path: str
    entries: int
    written: bool


@dataclass(slots=True)
class BuildReport:
    problems: list[Problem] = field(default_factory=list)
    feeds: list[FeedReport] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    statements: int = 0
    next_embargo: datetime | None = None

    @property
    def written(self) -> int:
        return sum(1 for f in self.feeds if f.written)


def site_defaults(config: Config) -> SiteDefaults:
    site = config.site
    return SiteDefaults(
        site.url, site.default_language, site.timezone, site.author, config.feeds.excerpt_words
    )


def feed_settings(config: Config) -> FeedSettings:
    site = config.site
    return FeedSettings(
        site_title=site.title,
        site_url=site.url,
        feeds_url=site.feeds_url,
        author=site.author,
        language_titles=dict(sorted(site.language_titles.items())),
        max_entries=config.feeds.max_entries,
        generator_version=__version__,
    )


class Publisher:
    """Builds the feeds of one site. Safe to call repeatedly (the daemon does)."""

    def __init__(self, config: Config, clock: Clock = system_clock) -> None:
        self.config = config
        self.clock = clock
        self.defaults = site_defaults(config)
        self.settings = feed_settings(config)
        # Parsed results depend on the site defaults too (url, language, excerpt length).
        key = repr((PARSER_VERSION, __version__, self.defaults)).encode()
        self._defaults_key = hashlib.blake2b(key, digest_size=8).hexdigest()

    def load(self, cache: BuildCache | None) -> Catalog:
        """Read and parse every statement; the catalog as of now. No output is written."""
        files, problems = read_sources(self.config.paths.statements)
        statements = self._parse(files, problems, cache)
        return build_catalog(statements, problems, self.clock())

    def check(self) -> BuildReport:
        catalog = self.load(cache=None)
        return BuildReport(problems=list(catalog.problems), statements=len(catalog.statements))

    def build(self) -> BuildReport:
        with BuildCache(self.config.paths.state / "cache.sqlite") as cache:
            catalog = self.load(cache)
            report = BuildReport(
                problems=list(catalog.problems),
                statements=len(catalog.statements),
                next_embargo=catalog.next_embargo(),
            )
            documents = plan_feeds(catalog, self.settings)
            self._publish(documents, cache, report)
            cache.prune_html({s.digest for s in catalog.statements})
        return report

    def _parse(
        self, files: list[SourceFile], problems: list[Problem], cache: BuildCache | None
    ) -> list[Statement]:
        known = cache.parsed() if cache is not None else {}
        statements: list[Statement] = []
        fresh: list[tuple[str, Statement]] = []
        used: set[str] = set()
        for file in files:
            content = hashlib.blake2b(file.data, digest_size=16).hexdigest()
            key = f"{content}|{self._defaults_key}|{file.source}"
            statement = known.get(key)
            if statement is None:
                result = parse_statement(file.source, file.data, self.defaults)
                problems.extend(result.problems)
                if result.statement is None:
                    continue
                statement = result.statement
                fresh.append((key, statement))
            used.add(key)
            statements.append(statement)
        if cache is not None and (fresh or len(known) != len(used)):
            cache.store_parsed(fresh, used)
        return statements

    def _publish(self, documents: list[Document], cache: BuildCache, report: BuildReport) -> None:
        output = self.config.paths.output
        previous = cache.fingerprints()
        stale = [
            d
            for d in documents
            if previous.get(d.path) != d.fingerprint or not (output / d.path).is_file()
        ]
        stale_paths = {d.path for d in stale}
        html = self._html_for(stale, cache)
        for document in documents:
            written = False
            if document.path in stale_paths:
                data = render_document(document, self.settings, partial(self._content, html))
                written = write_if_changed(output / document.path, data)
            if not document.archive:
                report.feeds.append(
                    FeedReport(document.lang, document.path, len(document.entries), written)
                )
        keep = {output / d.path for d in documents}
        report.removed = [str(p.relative_to(output)) for p in remove_stale(output / "feeds", keep)]
        cache.store_fingerprints({d.path: d.fingerprint for d in documents})

    @staticmethod
    def _content(html: dict[str, str], statement: Statement) -> str:
        """An entry's HTML with relative URLs made absolute against the statement's URL."""
        return resolve_urls(html[statement.digest], partial(urljoin, statement.url))

    def _html_for(self, documents: Iterable[Document], cache: BuildCache) -> dict[str, str]:
        """Sanitised HTML of every entry in ``documents``: rendered only if not cached."""
        entries = {s.digest: s for d in documents for s in d.entries}
        html = cache.html(entries)
        missing = {
            digest: render_html(s.body) for digest, s in entries.items() if digest not in html
        }
        if missing:
            cache.store_html(missing)
            html.update(missing)
        return html
