"""The parse stage of a build: statement files → statements, parsing only what is new.

One build runs these steps (:meth:`ParseStage.run`)::

    remember  what earlier builds parsed: this process's memo, or the build cache
    scan      list the files; one whose signature or content is known is a hit
    parse     the misses (``parse.parse_files``, in workers when there are many)
    rename    a file renamed or moved keeps its identity
    record    the cache and the memo learn what this build used

Statements are kept (and cached) without their body, so memory does not grow with
the corpus: the content of what was parsed now is in the spool, and a document being
written renders its other entries' bodies from the files again (``render``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..domain.problems import Problem
from ..domain.statements import (
    SiteDefaults,
    Statement,
    inherit_identity,
    split_name,
    statement_id,
)
from .cache import BuildCache, FileHint
from .files import Listed, SourceFile, Unchanged, iter_sources
from .parse import (
    ContentRef,
    KeyText,
    ParseContext,
    Parsed,
    ParseKey,
    Spool,
    cache_key,
    parse_files,
)

__all__ = ["Known", "ParseStage", "SpoolIndex", "SpoolKey"]

_CACHE_BATCH = 1024  # new statements stored at a time while parsing goes on


# Plain tuples, not NamedTuples: one of each is made per statement per build, and
# a NamedTuple is made by a Python-level __new__ (450 ns against 60 ns here).
SpoolKey = tuple[str, str, str]
"""Names the content a spool holds: a statement's (source, digest, url)."""
SpoolIndex = dict[SpoolKey, ContentRef]


@dataclass(slots=True)
class Known:
    """What earlier builds parsed: statements by key, and each file's hint by source."""

    statements: dict[KeyText, Statement] = field(default_factory=dict)
    hints: dict[str, FileHint] = field(default_factory=dict)

    @classmethod
    def from_cache(cls, cache: BuildCache) -> Known:
        return cls(cache.parsed(), cache.file_hints())


@dataclass(slots=True)
class _Build:
    """One run's working state: what it found, as it goes."""

    problems: list[Problem]
    known: Known
    seen: dict[str, FileHint] = field(default_factory=dict)  # the hints it leaves behind
    statements: list[Statement] = field(default_factory=list)

    def hit(self, source: str, hint: FileHint) -> None:
        self.seen[source] = hint
        _, key = hint
        self.statements.append(self.known.statements[key])


class ParseStage:
    """Parses the statements of one site; remembers them between runs.

    A long-lived process (the daemon) keeps what its last run left in the cache in
    memory, so it need not load every statement from the cache per build. That memo
    is keyed by content, so it is never wrong, even if another process changed the
    cache since.
    """

    def __init__(
        self, root: Path, defaults: SiteDefaults, parsed_with: str, max_bytes: int | None
    ) -> None:
        self.root = root
        self.defaults = defaults
        self.parsed_with = parsed_with  # the ParseKey part naming parser and defaults
        self.max_bytes = max_bytes  # feeds.max_statement_bytes: larger files not read
        self.spooled: SpoolIndex = {}  # where the last run's spool holds new content
        self._memo: Known | None = None

    def run(
        self,
        problems: list[Problem],
        cache: BuildCache | None,
        *,
        verify: bool,
        spool: Spool | None,
    ) -> list[Statement]:
        """Every valid statement under the root (bodies left out); problems appended.

        With a cache, a file whose signature is the one recorded with its key is not
        read again, unless ``verify``. With a ``spool``, the content of every statement
        parsed now is rendered into it.
        """
        build = _Build(problems, self._remember(cache))
        spooled = spool.path if spool is not None else None
        context = ParseContext(self.defaults, self.parsed_with, spooled, self.max_bytes)
        # With no hints there are no renames: statements are final as parsed, and the
        # cache can take them in batches while the workers go on (a cold build stored
        # 10,000 rows after parsing, with the cores idle).
        early = cache if cache is not None and not build.known.hints else None
        misses = self._scan(build, check=not verify and cache is not None)
        fresh, saved = self._collect(build, parse_files(misses, context), early)
        if fresh and build.known.hints:
            fresh = [(key, self._after_rename(st, key, build)) for key, st in fresh]
        build.statements.extend(statement for _, statement in fresh)
        if cache is not None:
            self._record(build, cache, fresh, saved)
        return build.statements

    def _remember(self, cache: BuildCache | None) -> Known:
        if cache is None:
            return Known()
        return self._memo if self._memo is not None else Known.from_cache(cache)

    def _scan(self, build: _Build, *, check: bool) -> Iterator[Listed | SourceFile]:
        """Files not known already, for the parser; hits go straight into ``build``."""
        known = build.known

        def unchanged(source: str, signature: str) -> bool:
            hint = known.hints.get(source)
            if hint is None:
                return False
            recorded, key = hint
            # The key also names the site defaults: a config change must re-parse.
            return (
                recorded == signature
                and ParseKey.from_text(key).parsed_with == self.parsed_with
                and key in known.statements
            )

        # With nothing parsed before (a cold build), workers read the files. With a
        # warm cache, files are read and hashed here and only what is new is sent
        # on: a verifying rescan of 10,000 known files must not start a pool.
        items = iter_sources(
            self.root,
            build.problems,
            known=unchanged if check else None,
            read=bool(known.statements),
            max_bytes=self.max_bytes,
        )
        for item in items:
            if isinstance(item, Unchanged):
                build.hit(item.source, known.hints[item.source])  # the same signature
            elif isinstance(item, SourceFile):
                key = cache_key(item.data, self.parsed_with, item.source)
                if key in known.statements:  # same content as before (touched, moved back)
                    build.hit(item.source, (item.signature, key))
                else:
                    yield item
            else:
                yield item

    def _collect(
        self, build: _Build, results: Iterator[Parsed], early: BuildCache | None
    ) -> tuple[list[tuple[KeyText, Statement]], int]:
        """Take in parse results: new statements (returned, with their keys), problems,
        and where the spool holds their content. With ``early``, new statements are
        added to that cache in batches as they come; returned with the new statements:
        how many of them (the first ones) are stored already."""
        fresh: list[tuple[KeyText, Statement]] = []
        saved = 0
        self.spooled = {}
        for parsed in results:
            build.problems.extend(parsed.problems)
            if parsed.key is None or parsed.statement is None:
                continue  # unreadable, invalid (reported) or removed since it was listed
            statement = parsed.statement
            fresh.append((parsed.key, statement))
            build.seen[parsed.source] = (parsed.signature, parsed.key)
            if parsed.content is not None:
                self.spooled[statement.source, statement.digest, statement.url] = parsed.content
            if early is not None and len(fresh) - saved >= _CACHE_BATCH:
                early.add_parsed(fresh[saved:])
                saved = len(fresh)
        return fresh, saved

    def _after_rename(self, statement: Statement, key: KeyText, build: _Build) -> Statement:
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
        old = _predecessor(ParseKey.from_text(key), build.known, build.seen)
        if old is None or old.lang != statement.lang:
            return statement
        return inherit_identity(statement, old, self.defaults)

    def _record(
        self,
        build: _Build,
        cache: BuildCache,
        fresh: list[tuple[KeyText, Statement]],
        saved: int,
    ) -> None:
        """Store what the cache does not hold yet; remember what this run used."""
        # The memo's hints are what this stage stored; another process (a `build`
        # beside the daemon) may have changed the table since.
        stored = cache.file_hints() if self._memo is not None else build.known.hints
        known = build.known
        _save_parsed(cache, fresh[saved:], build.seen, stored=stored, known=len(known.statements))
        memo = {
            key: known.statements[key] for _, key in build.seen.values() if key in known.statements
        }
        memo.update(fresh)
        self._memo = Known(memo, dict(build.seen))

    def content_refs(self, entries: tuple[Statement, ...]) -> dict[str, ContentRef]:
        """Where the last run's spool holds the content of these entries, by source."""
        refs: dict[str, ContentRef] = {}
        for s in entries:
            ref = self.spooled.get((s.source, s.digest, s.url))
            if ref is not None:
                refs[s.source] = ref
        return refs


def _predecessor(key: ParseKey, known: Known, seen: Mapping[str, FileHint]) -> Statement | None:
    """The statement a new parse of ``key.source`` continues, if any."""
    hint = known.hints.get(key.source)
    if hint is not None:  # the same path, before this edit
        return known.statements.get(hint[1])
    for old_source, (_, old_key) in known.hints.items():
        if old_source not in seen and ParseKey.from_text(old_key).digest == key.digest:
            return known.statements.get(old_key)  # the same content, at a path that is gone
    return None


def _default_identity(statement: Statement, defaults: SiteDefaults) -> bool:
    name_key, _ = split_name(statement.source, defaults.default_language)
    base = defaults.id_base or defaults.url
    return statement.translation_key == name_key and statement.id == statement_id(
        base, name_key, statement.lang
    )


def _save_parsed(
    cache: BuildCache,
    fresh: list[tuple[KeyText, Statement]],
    seen: dict[str, FileHint],
    *,
    stored: dict[str, FileHint],
    known: int,
) -> None:
    """Record new parses, drop unused ones, and keep the file hints for the next build
    (``stored``: the hints as the table holds them, so only the difference is written)."""
    used = {key for _, key in seen.values()}
    if fresh or known != len(used):
        cache.store_parsed(fresh, used)
    if seen != stored:
        cache.store_file_hints(seen, previous=stored)
