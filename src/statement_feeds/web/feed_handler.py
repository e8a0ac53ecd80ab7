"""Serving the Atom feeds and the pages: ETag and Last-Modified, 304 Not Modified, gzip
when accepted."""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web

from .feed_files import FeedFile
from .handling import service_of
from .page_files import media_type

__all__ = ["ATOM_TYPE", "feed", "page", "send_file"]

ATOM_TYPE = "application/atom+xml"


async def feed(request: web.Request) -> web.StreamResponse:
    found = await service_of(request).feeds.get(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    return send_file(request, found, ATOM_TYPE, max_age=60)


async def page(request: web.Request) -> web.StreamResponse:
    """A page, the sitemap or robots.txt (``page_files``); ``/en`` redirects to ``/en/``."""
    files = service_of(request).page_files
    path = request.match_info.get("path", "")
    found = None if files is None else await files.get(path)
    if found is None:
        folder = files is not None and path and not path.endswith("/")
        if folder and files is not None and await files.get(path + "/") is not None:
            raise web.HTTPPermanentRedirect(request.path + "/")
        raise web.HTTPNotFound()
    relative, file = found
    return send_file(request, file, media_type(relative), max_age=60)


def send_file(
    request: web.Request, found: FeedFile, media_type: str, *, max_age: int
) -> web.StreamResponse:
    """A published file with its validators: 304 when the client has it, gzip when accepted."""
    gzipped = _accepts_gzip(request.headers.get("Accept-Encoding", ""))
    etag = found.etag_gzip if gzipped else found.etag
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(found.last_modified, usegmt=True),
        "Vary": "Accept-Encoding",
        "Cache-Control": f"public, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
    }
    if _not_modified(request, found):
        return web.Response(status=304, headers=headers)
    body = found.gzipped if gzipped else found.body
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = f"{media_type}; charset=utf-8"
    return web.Response(body=body, headers=headers)


def _accepts_gzip(header: str) -> bool:
    for part in header.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "x-gzip", "*"):
            quality = re.search(r"q=([0-9.]+)", params)
            return quality is None or _float(quality.group(1)) > 0
    return False


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _not_modified(request: web.Request, found: FeedFile) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    none_match = request.headers.get("If-None-Match")
    if none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in none_match.split(",")}
        return "*" in tags or bool(tags & {found.etag, found.etag_gzip})  # weak comparison
    since = request.headers.get("If-Modified-Since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return found.last_modified <= moment
