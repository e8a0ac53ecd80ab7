"""The HTTP interface (aiohttp): feeds, start page, sign-up, unsubscribe, health, metrics.

Handlers only translate between HTTP and :class:`statement_feeds.web.service.WebService`.

Routing and the public URL: every route is served under the path of
``http.public_url`` (``https://example.org/newsletter/`` → ``/newsletter/...``),
so a reverse proxy can forward that path unchanged; when the prefix is not
empty the same routes are also served at the root, for proxies that strip it.
Links in pages and mails are built from ``public_url`` (absolute), or, when it
is empty, from the request's own scheme and host. Forms post to relative URLs,
so they work under either mounting.

Start it with :func:`start_http` (the daemon does, when ``http.listen`` is set).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from .. import environment
from ..clock import Clock
from ..config import Config
from ..logs import event
from .feed_files import FeedFile
from .forms import choose_language, client_address
from .service import DEFAULT_LIMITS, Page, RateLimits, WebService, route_prefix

__all__ = ["HttpHandle", "build_app", "start_http"]

log = logging.getLogger(__name__)

CSRF_COOKIE = "sf_csrf"
ATOM_TYPE = "application/atom+xml"
MAX_BODY = 64 * 1024  # the largest legitimate form is a few hundred bytes
_SERVICE: web.AppKey[WebService] = web.AppKey("service", WebService)
_PROXIES: web.AppKey[int] = web.AppKey("proxies", int)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Pages: no scripts at all, forms only to ourselves, never framed. Tokens travel in
# URLs, so no Referer may carry them to the statements' site.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass
class HttpHandle:
    """A running server; ``await handle.close()`` stops it and releases everything."""

    runner: web.AppRunner
    service: WebService
    host: str
    port: int
    prefix: str

    @property
    def url(self) -> str:
        """The server's own base URL (under the prefix), e.g. ``http://127.0.0.1:8080/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.prefix}/"

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.service.close()


async def start_http(
    config: Config,
    clock: Clock,
    *,
    listen: str | None = None,
    limits: RateLimits = DEFAULT_LIMITS,
    trusted_proxies: int | None = None,
) -> HttpHandle:
    """Serve ``config`` on ``listen`` (default ``config.http.listen``; port 0 picks one).

    ``trusted_proxies``: how many reverse-proxy hops' ``X-Forwarded-For`` to believe
    for the per-client rate limit (default ``$STATEMENT_FEEDS_TRUSTED_PROXIES`` or 0).
    """
    address = listen if listen is not None else config.http.listen
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if trusted_proxies is None:
        trusted_proxies = environment.trusted_proxies()  # ConfigError if not a number
    service = WebService.open(config, clock, limits)
    app = build_app(service, trusted_proxies)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, int(port_text), reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        await service.close()
        raise
    server = site._server  # aiohttp exposes the bound port only here (port 0)
    sockets = getattr(server, "sockets", None) or []
    port = int(sockets[0].getsockname()[1]) if sockets else int(port_text)
    prefix = route_prefix(config.http.public_url)
    event(log, logging.INFO, "http.listening", host=host, port=port, prefix=prefix or "/")
    return HttpHandle(runner, service, host, port, prefix)


def build_app(service: WebService, trusted_proxies: int = 0) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_errors])
    app[_SERVICE] = service
    app[_PROXIES] = trusted_proxies
    prefix = route_prefix(service.config.http.public_url)
    for base in dict.fromkeys((prefix, "")):
        _routes(app.router, base)
    return app


def _routes(router: web.UrlDispatcher, base: str) -> None:
    router.add_get(base + "/", home)  # add_get also answers HEAD
    router.add_post(base + "/subscribe", subscribe)
    router.add_get(base + "/confirm", confirm_page)
    router.add_post(base + "/confirm", confirm)
    router.add_get(base + "/unsubscribe", unsubscribe_page)
    router.add_post(base + "/unsubscribe", unsubscribe)
    router.add_get(base + "/preferences", preferences_page)
    router.add_post(base + "/preferences", save_preferences)
    router.add_get(base + "/feeds/{path:.+}", feed)
    router.add_get(base + "/healthz", healthz)
    router.add_get(base + "/metrics", metrics)
    if base:
        router.add_get(base, _to_slash)


async def _to_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(request.path + "/")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods get a small page in the visitor's language, not a trace."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status not in (404, 405):
            raise
        service = request.app[_SERVICE]
        lang = _lang(request, service)
        page = service.notice(
            lang, exc.status, "Not found", "The page you asked for does not exist."
        )
        response = _page(page)
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
        return response


# -- helpers ---------------------------------------------------------------------------


def _service(request: web.Request) -> WebService:
    return request.app[_SERVICE]


def _lang(request: web.Request, service: WebService, explicit: str | None = None) -> str:
    """The page language: ``explicit`` (a form's ``lang``), ``?lang=`` or Accept-Language,
    whichever names a language of the site first; else the default language.

    Every handler takes its language from here: a tag from the request is only ever
    one the site offers, never the request's own text (issue: a 60 KB form ``lang``
    went into the page and into a cache).
    """
    return choose_language(
        explicit or request.query.get("lang"),
        request.headers.get("Accept-Language", ""),
        service.languages(),
        service.config.site.default_language,
    )


def _base_url(request: web.Request, service: WebService) -> str:
    prefix = route_prefix(service.config.http.public_url)
    return service.base_url(f"{request.scheme}://{request.host}{prefix}/")


def _page(page: Page, *, cache: str = "no-store") -> web.Response:
    response = web.Response(
        text=page.html, status=page.status, content_type="text/html", charset="utf-8"
    )
    response.headers.update(_PAGE_HEADERS)
    response.headers["Cache-Control"] = cache
    return response


def _csrf_cookie(request: web.Request) -> tuple[str, bool]:
    """The visitor's CSRF cookie value, and whether it is new (to be set)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if re.fullmatch(r"[A-Za-z0-9_-]{22,64}", value):
        return value, False
    return secrets.token_urlsafe(24), True


def _with_cookie(
    response: web.Response, service: WebService, value: str, new: bool
) -> web.Response:
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            value,
            httponly=True,
            samesite="Strict",
            secure=service.config.http.public_url.startswith("https:"),
            path="/",
        )
    response.headers["Vary"] = "Accept-Language, Cookie"
    return response


async def _form(request: web.Request) -> dict[str, Any]:
    data: MultiDictProxy[Any] = await request.post()
    form: dict[str, Any] = {k: str(v) for k, v in data.items() if isinstance(v, str)}
    form["languages"] = [str(v) for v in data.getall("languages", []) if isinstance(v, str)]
    return form


# -- pages -----------------------------------------------------------------------------


async def home(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    cookie, new = _csrf_cookie(request)
    page = await service.home(_lang(request, service), _base_url(request, service), cookie)
    return _with_cookie(_page(page), service, cookie, new)


async def subscribe(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    form = await _form(request)
    lang = _lang(request, service, form.get("lang"))
    cookie, new = _csrf_cookie(request)
    base = _base_url(request, service)
    if new or not service.csrf_ok(cookie, form.get("csrf", "")):
        # A missing or foreign token: show the form again with a fresh one.
        page = await service.home(lang, base, cookie, status=403, errors={"csrf": "csrf"})
        return _with_cookie(_page(page), service, cookie, new)
    client = client_address(request.remote, request.headers, request.app[_PROXIES])
    outcome = await service.subscribe(lang, base, cookie, form, client)
    return _with_cookie(_page(outcome.page), service, cookie, new)


async def confirm_page(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    lang = _lang(request, service)
    return _page(await service.confirm_page(lang, request.query.get("token", "")))


async def confirm(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    form = await _form(request)
    lang = _lang(request, service, form.get("lang"))
    token = form.get("token") or request.query.get("token", "")
    return _page(await service.confirm(lang, token, _base_url(request, service)))


async def unsubscribe_page(request: web.Request) -> web.StreamResponse:
    """Shows a button; never unsubscribes (mail scanners follow every GET link)."""
    service = _service(request)
    page = await service.unsubscribe_page(
        _lang(request, service), request.query.get("token", ""), _base_url(request, service)
    )
    return _page(page)


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    """RFC 8058 one-click: the token authorises, so no cookie or CSRF token is needed
    (mail providers POST without either)."""
    service = _service(request)
    form = await _form(request)
    lang = _lang(request, service)
    if form.get("List-Unsubscribe") != "One-Click":
        return _page(service.invalid_link(lang))
    token = request.query.get("token") or form.get("token", "")
    return _page(await service.unsubscribe(lang, token))


async def preferences_page(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    cookie, new = _csrf_cookie(request)
    page = await service.preferences_page(
        _lang(request, service), request.query.get("token", ""), cookie
    )
    return _with_cookie(_page(page), service, cookie, new)


async def save_preferences(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    form = await _form(request)
    lang = _lang(request, service)
    cookie, new = _csrf_cookie(request)
    token = form.get("token") or request.query.get("token", "")
    if new or not service.csrf_ok(cookie, form.get("csrf", "")):
        page = await service.preferences_page(lang, token, cookie, status=403)
        return _with_cookie(_page(page), service, cookie, new)
    page = await service.save_preferences(lang, token, cookie, form)
    return _with_cookie(_page(page), service, cookie, new)


# -- feeds -----------------------------------------------------------------------------


async def feed(request: web.Request) -> web.StreamResponse:
    found = await _service(request).feeds.get(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    gzipped = _accepts_gzip(request.headers.get("Accept-Encoding", ""))
    etag = found.etag_gzip if gzipped else found.etag
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(found.last_modified, usegmt=True),
        "Vary": "Accept-Encoding",
        "Cache-Control": "public, max-age=60",
        "X-Content-Type-Options": "nosniff",
    }
    if _not_modified(request, found):
        return web.Response(status=304, headers=headers)
    body = found.gzipped if gzipped else found.body
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = f"{ATOM_TYPE}; charset=utf-8"
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


# -- operations ------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.StreamResponse:
    ready, body = await _service(request).health()
    return web.Response(
        text=json.dumps(body, sort_keys=True),
        status=200 if ready else 503,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    # Counts only, but still nobody's business but the operator's: with a token set,
    # scrapers must send it (Prometheus: authorization { credentials: ... }).
    token = environment.metrics_token()
    sent = request.headers.get("Authorization", "")
    if token and not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    text = await _service(request).metrics()
    return web.Response(
        body=text.encode("utf-8"),
        headers={
            "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
            "Cache-Control": "no-store",
        },
    )
