"""The one place that joins the pure core to the I/O adapters: :class:`Publisher`.

``Publisher.build`` is the data path of a feed build, one named stage after another::

    parse_stage.ParseStage.run (files.iter_sources → parse.parse_files, cached by
    content; in workers: domain.statements.parse_statement, content spooled)
    → domain.catalog.build_catalog → plan.plan_feeds, for each format in FORMATS
    → render.render_all (the format renders; output.write_if_changed)
    → pages.PagesStage.run (domain.pages.plan_pages; page_render.PageRenderer, through
      render.render_all too)
    → front_page.write_front_page
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from .. import __version__
from ..clock import Clock, system_clock
from ..config import Config
from ..domain.catalog import Catalog, build_catalog
from ..domain.problems import Problem
from ..domain.statements import PARSER_VERSION, SiteDefaults
from .atom import ATOM
from .cache import BuildCache
from .formats import Document, FeedFormat, FeedSettings
from .front_page import write_front_page
from .front_page_index import describe
from .output import remove_stale
from .pages import PagesReport, PagesStage
from .parse import Spool
from .parse_stage import ParseStage
from .plan import plan_feeds
from .render import RenderJob, render_all
from .render import entry_content as _content  # noqa: F401  (tests reach it here)

__all__ = [
    "FORMATS",
    "BuildReport",
    "FeedReport",
    "Publisher",
    "feed_settings",
    "site_defaults",
]

# Every format a build writes. The first one's documents describe the feeds to the
# web pages (``front_page_index``). A new format: its module, and a line here.
FORMATS: tuple[FeedFormat, ...] = (ATOM,)


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
    # The self URL of every document (feed or archive page) whose bytes were written:
    # what the daemon pings the WebSub hubs about.
    changed_urls: list[str] = field(default_factory=list)
    statements: int = 0
    next_embargo: datetime | None = None
    pages: PagesReport = field(default_factory=PagesReport)

    @property
    def written(self) -> int:
        return sum(1 for f in self.feeds if f.written)


def site_defaults(config: Config) -> SiteDefaults:
    site = config.site
    return SiteDefaults(
        site.url,
        site.default_language,
        site.timezone,
        site.author,
        config.feeds.excerpt_words,
        site.id_base,
    )


def feed_settings(config: Config) -> FeedSettings:
    site = config.site
    return FeedSettings(
        site_title=site.title,
        site_url=site.url,
        id_base=site.id_base,
        feeds_url=site.feeds_url,
        author=site.author,
        language_titles=dict(sorted(site.language_titles.items())),
        max_entries=config.feeds.max_entries,
        generator_version=__version__,
        hubs=config.feeds.websub_hubs,
    )


class Publisher:
    """Builds the feeds of one site. Safe to call repeatedly (the daemon does)."""

    def __init__(
        self,
        config: Config,
        clock: Clock = system_clock,
        formats: Sequence[FeedFormat] = FORMATS,
    ) -> None:
        if not formats:
            raise ValueError("a build writes at least one format")
        self.config = config
        self.clock = clock
        self.formats = tuple(formats)
        self.defaults = site_defaults(config)
        # Parsed results depend on the site defaults too (url, language, excerpt length).
        key = repr((PARSER_VERSION, __version__, self.defaults)).encode()
        parsed_with = hashlib.blake2b(key, digest_size=8).hexdigest()
        self.settings = replace(feed_settings(config), parsed_with=parsed_with)
        paths = config.paths
        limit = config.feeds.max_statement_bytes  # larger files: reported, not read
        self._parse = ParseStage(paths.statements, self.defaults, parsed_with, limit)
        self._pages = PagesStage(config, parsed_with)

    def load(
        self, cache: BuildCache | None, *, verify: bool = False, spool: Spool | None = None
    ) -> Catalog:
        """Read and parse every statement; the catalog as of now. No output is written.

        With a cache, a file whose signature (size, mtime, ctime, inode) is the one
        recorded with its content key is not read again; ``verify`` reads and hashes
        every file anyway (the daemon does so now and then). With a ``spool``, the
        content of every statement parsed now is rendered into it (see ``parse``).
        """
        problems: list[Problem] = []
        statements = self._parse.run(problems, cache, verify=verify, spool=spool)
        return build_catalog(statements, problems, self.clock())

    def last_build(self) -> dict[str, str]:
        """What the last build recorded, for ``status`` (empty if there was none)."""
        path = self.config.paths.state / "cache.sqlite"
        if not path.exists():
            return {}
        with BuildCache(path) as cache:
            return cache.last_build()

    def check(self) -> BuildReport:
        catalog = self.load(cache=None)
        self._pages.check(catalog)  # the page templates: ConfigError naming file and line
        return BuildReport(problems=list(catalog.problems), statements=len(catalog.statements))

    def build(self, *, verify: bool = False) -> BuildReport:
        state = self.config.paths.state
        with BuildCache(state / "cache.sqlite") as cache:
            spool = Spool(state)
            try:
                return self._build(cache, spool, verify=verify)
            finally:
                spool.remove()

    def _build(self, cache: BuildCache, spool: Spool, *, verify: bool) -> BuildReport:
        catalog = self.load(cache, verify=verify, spool=spool)
        report = BuildReport(
            problems=list(catalog.problems),
            statements=len(catalog.statements),
            next_embargo=catalog.next_embargo(),
        )
        if any(p.incomplete for p in catalog.problems):
            # Part of the folder could not be read: publishing would drop (and the
            # stale-file sweep delete) statements that still exist. Keep the last
            # good feeds instead.
            return report
        plans = [(fmt, plan_feeds(catalog, self.settings, fmt)) for fmt in self.formats]
        previous = cache.fingerprints()
        fingerprints = self._publish(plans, previous, spool, report)
        try:
            # After the feeds: the pages link to them.
            pages, report.pages = self._pages.run(
                catalog, previous, spool.path, self._parse.content_refs
            )
        except BaseException:
            # The feeds are written: keep their record, and the pages' as they were.
            kept = {k: v for k, v in previous.items() if k.startswith("page:")}
            cache.store_fingerprints({**fingerprints, **kept}, previous)
            raise
        cache.store_fingerprints({**fingerprints, **pages}, previous)
        # After the feeds: the web side's index never names a feed not yet written.
        write_front_page(self.config.paths.state, describe(plans[0][1]))
        cache.store_last_build(
            {
                "at": catalog.now.isoformat(),
                "statements": str(report.statements),
                "problems": str(len(report.problems)),
                "written": str(report.written),
            }
        )
        return report

    def _publish(
        self,
        plans: list[tuple[FeedFormat, list[Document]]],
        previous: dict[str, str],
        spool: Spool,
        report: BuildReport,
    ) -> dict[str, str]:
        """Write the feeds that changed, remove the stale; their fingerprints."""
        output = self.config.paths.output
        documents = [d for _, planned in plans for d in planned]
        jobs = [
            self._job(fmt, d, spool)
            for fmt, planned in plans
            for d in planned
            if previous.get(d.path) != d.fingerprint or not (output / d.path).is_file()
        ]
        written = dict(zip((job.document.path for job in jobs), render_all(jobs), strict=True))
        report.changed_urls = [j.document.self_url for j in jobs if written[j.document.path]]
        for document in documents:
            if not document.archive:
                report.feeds.append(
                    FeedReport(
                        document.lang,
                        document.path,
                        len(document.entries),
                        written.get(document.path, False),
                    )
                )
        keep = {output / d.path for d in documents}
        report.removed = [
            str(path.relative_to(output))
            for fmt in self.formats
            for path in remove_stale(output / "feeds", keep, f"*{fmt.suffix}")
        ]
        return {d.path: d.fingerprint for d in documents}

    def _job(self, fmt: FeedFormat, document: Document, spool: Spool) -> RenderJob:
        paths = self.config.paths
        refs = self._parse.content_refs(document.entries)
        return RenderJob(
            fmt,
            document,
            self.settings,
            paths.statements,
            refs,
            spool.path,
            paths.output / document.path,
        )
