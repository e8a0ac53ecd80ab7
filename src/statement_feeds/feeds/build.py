"""The one place that joins the pure core to the I/O adapters.

``Publisher.build`` is the data path of a feed build::

    adapters.files.iter_sources → parsing.parse_files (cached by content; in workers:
    core.statements.parse_statement, and each statement's content rendered to a spool)
    → core.catalog.build_catalog → core.feeds.plan_feeds → core.feeds.render_document
    → adapters.output.write_if_changed
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from html import escape as html_escape
from pathlib import Path
from typing import TypedDict

from .. import __version__
from ..clock import Clock, system_clock
from ..config import Config
from ..domain.catalog import Catalog, build_catalog
from ..domain.problems import Problem
from ..domain.statements import (
    PARSER_VERSION,
    SiteDefaults,
    Statement,
    inherit_identity,
    split_name,
    statement_body,
    statement_id,
)
from .atom import Document, FeedSettings, plan_feeds, render_document
from .cache import BuildCache
from .files import Listed, SourceFile, Unchanged, iter_sources
from .front_page import write_front_page
from .front_page_index import describe
from .output import remove_stale, sync_folders, write_if_changed
from .parse import (
    ContentRef,
    ParseContext,
    Parsed,
    Spool,
    SpoolReader,
    cache_key,
    content_html,
    parse_files,
)
from .workers import process_map, start_method

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
    )


class Publisher:
    """Builds the feeds of one site. Safe to call repeatedly (the daemon does)."""

    def __init__(self, config: Config, clock: Clock = system_clock) -> None:
        self.config = config
        self.clock = clock
        self.defaults = site_defaults(config)
        # Parsed results depend on the site defaults too (url, language, excerpt length).
        key = repr((PARSER_VERSION, __version__, self.defaults)).encode()
        self._defaults_key = hashlib.blake2b(key, digest_size=8).hexdigest()
        self.settings = replace(feed_settings(config), parsed_with=self._defaults_key)
        # What the last build of this Publisher left in the cache, kept in memory: a
        # long-lived process (the daemon) need not unpickle every statement per build.
        # Content-keyed, so never wrong, even if another process updated the cache.
        self._memo: tuple[dict[str, Statement], dict[str, tuple[str, str]]] | None = None
        # (source, digest, url) → where the current build's spool holds that content.
        self._spooled: dict[tuple[str, str, str], ContentRef] = {}

    def load(
        self, cache: BuildCache | None, *, verify: bool = False, spool: Spool | None = None
    ) -> Catalog:
        """Read and parse every statement; the catalog as of now. No output is written.

        With a cache, a file whose signature (size, mtime, ctime, inode) is the one
        recorded with its content key is not read again; ``verify`` reads and hashes
        every file anyway (the daemon does so now and then). With a ``spool``, the
        content of every statement parsed now is rendered into it (see ``parsing``).
        """
        problems: list[Problem] = []
        statements = self._parse(problems, cache, verify=verify, spool=spool)
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
        documents = plan_feeds(catalog, self.settings)
        self._publish(documents, cache, spool, report)
        # After the feeds: the web side's index never names a feed not yet written.
        write_front_page(self.config.paths.state, describe(documents))
        cache.store_last_build(
            {
                "at": catalog.now.isoformat(),
                "statements": str(report.statements),
                "problems": str(len(report.problems)),
                "written": str(report.written),
            }
        )
        return report

    def _parse(
        self,
        problems: list[Problem],
        cache: BuildCache | None,
        *,
        verify: bool,
        spool: Spool | None,
    ) -> list[Statement]:
        """Parse what the cache does not already hold; keep bodies out of memory.

        Files stream through: a cache hit keeps only its (body-less) statement, a
        miss goes to the parser (in worker processes when there are many, which read
        the file themselves). Statements are kept (and cached) without their body,
        so memory does not grow with the corpus: the content of what was parsed now
        is in the spool, and a document being written renders its other entries'
        bodies from the files again (see ``_render_job``).
        """
        known: dict[str, Statement]
        hints: dict[str, tuple[str, str]]
        from_memo = cache is not None and self._memo is not None
        if cache is None:
            known, hints = {}, {}
        elif self._memo is not None:
            known, hints = self._memo
        else:
            known, hints = cache.parsed(), cache.file_hints()
        seen: dict[str, tuple[str, str]] = {}  # the hints this build leaves behind
        statements: list[Statement] = []
        limit = self.config.feeds.max_statement_bytes  # larger files: reported, not read

        def unchanged(source: str, signature: str) -> bool:
            hint = hints.get(source)
            # The key also names the site defaults: a config change must re-parse.
            return (
                hint is not None
                and hint[0] == signature
                and hint[1].split("|")[1] == self._defaults_key
                and hint[1] in known
            )

        def misses() -> Iterator[Listed | SourceFile]:
            check = None if verify or cache is None else unchanged
            root = self.config.paths.statements
            # With nothing parsed before (a cold build), workers read the files. With a
            # warm cache, files are read and hashed here and only what is new is sent
            # on: a verifying rescan of 10,000 known files must not start a pool.
            read = bool(known)
            for item in iter_sources(root, problems, known=check, read=read, max_bytes=limit):
                if isinstance(item, Unchanged):
                    key = hints[item.source][1]
                    seen[item.source] = (item.signature, key)
                    statements.append(known[key])
                elif isinstance(item, SourceFile):
                    key = cache_key(item.data, self._defaults_key, item.source)
                    statement = known.get(key)
                    if statement is None:
                        yield item
                    else:  # same content as before (touched, or moved back)
                        seen[item.source] = (item.signature, key)
                        statements.append(statement)
                else:
                    yield item

        spooled = spool.path if spool is not None else None
        context = ParseContext(self.defaults, self._defaults_key, spooled, limit)
        # With no hints there are no renames: statements are final as parsed, and the
        # cache can take them in batches while the workers go on (a cold build stored
        # 10,000 rows after parsing, with the cores idle).
        early = cache if cache is not None and not hints else None
        fresh, saved = self._collect(parse_files(misses(), context), seen, problems, early)
        if fresh and hints:
            fresh = [(key, self._after_rename(st, key, hints, seen, known)) for key, st in fresh]
        statements.extend(statement for _, statement in fresh)
        if cache is not None:
            # The memo's hints are what this Publisher stored; another process (a
            # `build` beside the daemon) may have changed the table since.
            stored = cache.file_hints() if from_memo else hints
            _save_parsed(cache, fresh[saved:], seen, hints=hints, stored=stored, known=len(known))
            used = {key for _, key in seen.values()}
            memo = {key: known[key] for key in used if key in known}
            memo.update(fresh)
            self._memo = (memo, dict(seen))
        return statements

    def _collect(
        self,
        results: Iterator[Parsed],
        seen: dict[str, tuple[str, str]],
        problems: list[Problem],
        early: BuildCache | None = None,
    ) -> tuple[list[tuple[str, Statement]], int]:
        """Take in parse results: new statements (returned, with their keys), problems,
        and where the spool holds their content. With ``early``, new statements are
        added to that cache in batches as they come; returned with the new statements:
        how many of them (the first ones) are stored already."""
        fresh: list[tuple[str, Statement]] = []
        saved = 0
        self._spooled = {}
        for parsed in results:
            problems.extend(parsed.problems)
            if parsed.key is None or parsed.statement is None:
                continue  # unreadable, invalid (reported) or removed since it was listed
            statement = parsed.statement
            fresh.append((parsed.key, statement))
            seen[parsed.source] = (parsed.signature, parsed.key)
            if parsed.content is not None:
                self._spooled[(statement.source, statement.digest, statement.url)] = parsed.content
            if early is not None and len(fresh) - saved >= _CACHE_BATCH:
                early.add_parsed(fresh[saved:])
                saved = len(fresh)
        return fresh, saved

    def _after_rename(
        self,
        statement: Statement,
        key: str,
        hints: dict[str, tuple[str, str]],
        seen: dict[str, tuple[str, str]],
        known: dict[str, Statement],
    ) -> Statement:
        """A file renamed or moved keeps its identity (id, translation key, url).

        Its default ``translation_key`` comes from the file name, so a rename would
        change its id and readers would see it as new. A new path holding exactly the
        content of a path that is gone inherits the identity recorded for the old
        path; a later edit of that file keeps it too (its predecessor is the same
        path). An edit and a rename at once cannot be told from a new statement: set
        ``translation_key`` to keep the id then. Explicit identities are never touched.
        """
        if not _default_identity(statement, self.defaults):
            return statement
        old = self._predecessor(statement.source, key, hints, seen, known)
        if old is None or old.lang != statement.lang:
            return statement
        return inherit_identity(statement, old, self.defaults)

    @staticmethod
    def _predecessor(
        source: str,
        key: str,
        hints: dict[str, tuple[str, str]],
        seen: dict[str, tuple[str, str]],
        known: dict[str, Statement],
    ) -> Statement | None:
        if source in hints:  # the same path, before this edit
            return known.get(hints[source][1])
        content = key.split("|", 1)[0]
        for old_source, (_, old_key) in hints.items():
            if old_source not in seen and old_key.split("|", 1)[0] == content:
                return known.get(old_key)  # the same content, at a path that is gone
        return None

    def _publish(
        self, documents: list[Document], cache: BuildCache, spool: Spool, report: BuildReport
    ) -> None:
        output = self.config.paths.output
        previous = cache.fingerprints()
        stale = [
            d
            for d in documents
            if previous.get(d.path) != d.fingerprint or not (output / d.path).is_file()
        ]
        root = self.config.paths.statements
        jobs: list[_RenderJob] = [
            (d, self.settings, root, self._refs(d), spool.path, output / d.path) for d in stale
        ]
        written = dict(zip((d.path for d in stale), _render_all(jobs), strict=True))
        folders = {(output / d.path).parent for d in stale if written[d.path]}
        sync_folders(folders)
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
        report.removed = [str(p.relative_to(output)) for p in remove_stale(output / "feeds", keep)]
        cache.store_fingerprints({d.path: d.fingerprint for d in documents})

    def _refs(self, document: Document) -> dict[str, ContentRef]:
        """Where this build's spool holds the content of a document's entries, by source."""
        refs: dict[str, ContentRef] = {}
        for s in document.entries:
            ref = self._spooled.get((s.source, s.digest, s.url))
            if ref is not None:
                refs[s.source] = ref
        return refs


_RENDER_PARALLEL_FROM = 16  # documents to write before worker processes pay off
_CACHE_BATCH = 1024  # new statements stored at a time while parsing goes on


class _PoolOptions(TypedDict):
    parallel_from: int
    window: int
    chunksize: int
    per_core: int


_RenderJob = tuple[Document, FeedSettings, Path, Mapping[str, ContentRef], str, Path]


def _render_all(jobs: list[_RenderJob]) -> list[bool]:
    """Run ``_render_job`` for every job, in worker processes when there are many.

    Workers render and write (each file fsynced): twice as many as cores, so that one
    waiting for its fsync leaves the core to another. Forked workers inherit ``jobs``
    and are sent indices: pickling the documents (50 statements each, with their
    translations) to them cost ~0.5 s of CPU in a cold build of 10,000 statements.
    """
    pool = _PoolOptions(parallel_from=_RENDER_PARALLEL_FROM, window=16, chunksize=1, per_core=2)
    if start_method() != "fork":
        return list(process_map(_render_job, iter(jobs), **pool))
    try:
        indices = iter(range(len(jobs)))
        return list(
            process_map(
                _render_shared,
                indices,
                **pool,
                initializer=_share_jobs,
                initargs=(jobs,),
            )
        )
    finally:
        _share_jobs([])  # when they ran here


class _Shared:
    """The render jobs of this build, where forked workers find them by index."""

    def __init__(self) -> None:
        self.jobs: list[_RenderJob] = []


_shared = _Shared()


def _share_jobs(jobs: list[_RenderJob]) -> None:
    _shared.jobs = jobs


def _render_shared(index: int) -> bool:
    return _render_job(_shared.jobs[index])


def _render_job(job: _RenderJob) -> bool:
    """Render one document and write it (atomically, if its bytes changed): written?

    Entries parsed in this build were rendered then (their content is in the spool);
    any other is rendered from its file here: only documents being written pay for
    that, and memory holds one document. The folder's own fsync is left to the
    caller, once per folder.
    """
    document, settings, root, refs, spool_path, path = job
    reader = SpoolReader(spool_path)
    try:
        data = render_document(document, settings, partial(_content, root, refs, reader))
    finally:
        reader.close()
    return write_if_changed(path, data, folders=set())


def _content(
    root: Path, refs: Mapping[str, ContentRef], spool: SpoolReader, statement: Statement
) -> str:
    """An entry's sanitised HTML, relative URLs made absolute against its own URL.

    A file changed or removed since it was parsed still gives content: the current
    body, or the summary; the next build (its signature changed) brings both in step.
    """
    ref = refs.get(statement.source)
    if ref is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return spool.read(ref)
    try:
        body = statement_body(statement.source, (root / statement.source).read_bytes())
    except (OSError, ValueError):
        body = None
    if body is None:
        return f"<p>{html_escape(statement.summary)}</p>"
    return content_html(statement.url, body)


def _default_identity(statement: Statement, defaults: SiteDefaults) -> bool:
    name_key, _ = split_name(statement.source, defaults.default_language)
    base = defaults.id_base or defaults.url
    return statement.translation_key == name_key and statement.id == statement_id(
        base, name_key, statement.lang
    )


def _save_parsed(
    cache: BuildCache,
    fresh: list[tuple[str, Statement]],
    seen: dict[str, tuple[str, str]],
    *,
    hints: dict[str, tuple[str, str]],
    stored: dict[str, tuple[str, str]],
    known: int,
) -> None:
    """Record new parses, drop unused ones, and keep the file hints for the next build
    (``stored``: the hints as the table holds them, so only the difference is written)."""
    used = {key for _, key in seen.values()}
    if fresh or known != len(used):
        cache.store_parsed(fresh, used)
    if seen != stored:
        cache.store_file_hints(seen, previous=stored)
