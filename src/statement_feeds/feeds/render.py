"""Planned documents → files: each rendered by its format and written if its bytes changed.

Many documents are rendered in worker processes (``render_all``); each reads its
entries' content from the build's spool, or renders it from the statement's file.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from functools import partial
from html import escape as html_escape
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypedDict

from ..domain.excerpt_links import has_links, strip_markers, summary_html
from ..domain.statements import Statement, statement_body
from .formats import FeedFormat
from .output import discard_staged, publish_staged, stage_if_changed, sync_folders, write_if_changed
from .parse import ContentRef, SpoolReader, content_html
from .workers import process_map, start_method

__all__ = ["RenderJob", "Renderer", "entry_content", "render_all"]

_RENDER_PARALLEL_FROM = 16  # documents to write before worker processes pay off
# Documents in one batch from which they are staged and published together (two
# filesystem syncs, see output.publish_staged) rather than each fsynced with its folder:
# a cold build's pages. A rebuild's few files keep their own fsyncs (a filesystem sync
# would also wait for whatever else the machine is writing).
_STAGE_FROM = 64


class Renderer(Protocol):
    """What renders a planned document to bytes: a feed format (``formats.FeedFormat``,
    its ``Document`` and ``FeedSettings``) or the pages (``page_render.PageRenderer``,
    a ``domain.pages.Page`` and ``PageSettings``)."""

    def render(self, document: Any, settings: Any, html: Callable[[Statement], str]) -> bytes:
        """The bytes of one document. ``html`` gives a statement's sanitised HTML."""
        ...


class RenderJob(NamedTuple):
    """One document to render and write, with what its entries' content comes from."""

    fmt: Renderer | FeedFormat
    document: Any  # formats.Document for a feed format, domain.pages.Page for pages
    settings: Any  # FeedSettings, PageSettings
    root: Path  # the statements folder
    refs: Mapping[str, ContentRef]  # source → its content in the spool
    spool: str  # the spool folder
    path: Path  # where the document goes


class _PoolOptions(TypedDict):
    parallel_from: int
    window: int
    chunksize: int
    per_core: int
    here: bool


def render_all(jobs: list[RenderJob]) -> list[bool]:
    """Run ``_render_job`` for every job, in worker processes when there are many; each
    written file is on disk, folder entry included, when this returns.

    Workers render and write: twice as many as cores, so that one waiting for the disk
    leaves the core to another. Forked workers inherit ``jobs`` and are sent indices:
    pickling the documents (50 statements each, with their translations) to them cost
    ~0.5 s of CPU in a cold build of 10,000 statements. From ``_STAGE_FROM`` jobs the
    files are staged and published together (``output.publish_staged``).
    """
    token = secrets.token_hex(8) if len(jobs) >= _STAGE_FROM else ""
    # Staged writes do not wait for the disk: fewer workers, and chunks of jobs (one
    # message per job to and from the workers was a third of a cold build's CPU); this
    # process renders too, in place of one worker (one copy fewer of its memory: see
    # ``process_map``).
    pool = (
        _PoolOptions(
            parallel_from=_RENDER_PARALLEL_FROM, window=64, chunksize=16, per_core=1, here=True
        )
        if token
        else _PoolOptions(
            parallel_from=_RENDER_PARALLEL_FROM, window=16, chunksize=1, per_core=2, here=False
        )
    )
    try:
        if start_method() != "fork":
            written = list(process_map(partial(_render_job, token=token), iter(jobs), **pool))
        else:
            try:
                written = list(
                    process_map(
                        partial(_render_shared, token=token),
                        iter(range(len(jobs))),
                        **pool,
                        initializer=_share_jobs,
                        initargs=(jobs,),
                    )
                )
            finally:
                _share_jobs([])  # when they ran here
    except BaseException:
        if token:
            discard_staged((job.path for job in jobs), token)
        raise
    paths = [job.path for job, done in zip(jobs, written, strict=True) if done]
    if token:
        publish_staged(paths, token)
    else:
        sync_folders({path.parent for path in paths})
    return written


class _Shared:
    """The render jobs of this build, where forked workers find them by index."""

    def __init__(self) -> None:
        self.jobs: list[RenderJob] = []


_shared = _Shared()


def _share_jobs(jobs: list[RenderJob]) -> None:
    _shared.jobs = jobs


def _render_shared(index: int, token: str) -> bool:
    return _render_job(_shared.jobs[index], token)


def _render_job(job: RenderJob, token: str = "") -> bool:
    """Render one document and write it if its bytes changed: written?

    Entries parsed in this build were rendered then (their content is in the spool);
    any other is rendered from its file here: only documents being written pay for
    that, and memory holds one document. Without ``token`` the file is written
    atomically and fsynced, its folder's fsync left to the caller; with one it is
    staged for ``output.publish_staged``.
    """
    reader = SpoolReader(job.spool)
    try:
        html = partial(entry_content, job.root, job.refs, reader)
        data = job.fmt.render(job.document, job.settings, html)
    finally:
        reader.close()
    if token:
        return stage_if_changed(job.path, data, token)
    return write_if_changed(job.path, data, folders=set())


def entry_content(
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
        if has_links(statement.summary):
            return summary_html(statement.summary)
        return f"<p>{html_escape(strip_markers(statement.summary))}</p>"
    return content_html(statement.url, body)
