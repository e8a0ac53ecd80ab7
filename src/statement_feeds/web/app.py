"""The HTTP interface (aiohttp): feeds, pages, start page, sign-up, unsubscribe, health,
metrics.

Handlers only translate between HTTP and :class:`statement_feeds.web.service.WebService`.
The page handlers are in :mod:`.page_handlers`, the feeds' (ETag, 304, gzip) in
:mod:`.feed_handler`, what they share (language, CSRF cookie, page headers) in
:mod:`.handling`; this module starts the server, routes, and answers health and metrics.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from .. import environment
from ..clock import Clock
from ..config import Config
from ..logs import event
from .feed_handler import ATOM_TYPE, feed, page
from .handling import CSRF_COOKIE, PROXIES, SERVICE, page_language, page_response, service_of
from .page_handlers import (
    confirm,
    confirm_page,
    home,
    preferences_page,
    save_preferences,
    subscribe,
    unsubscribe,
    unsubscribe_page,
)
from .service import DEFAULT_LIMITS, RateLimits, WebService, route_prefix

__all__ = [  # the handlers and names that moved out stay importable from here
    "ATOM_TYPE",
    "CSRF_COOKIE",
    "HttpHandle",
    "build_app",
    "confirm",
    "confirm_page",
    "feed",
    "healthz",
    "home",
    "metrics",
    "preferences_page",
    "save_preferences",
    "start_http",
    "subscribe",
    "unsubscribe",
    "unsubscribe_page",
]

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # the largest legitimate form is a few hundred bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    app[SERVICE] = service
    app[PROXIES] = trusted_proxies
    prefix = route_prefix(service.config.http.public_url)
    for base in dict.fromkeys((prefix, "")):
        _routes(app.router, base)
    # Last: the pages `build` wrote, under the site's root (site.url's path). A path the
    # web side answers itself (its start page at "/" when both roots are the same) is
    # matched first.
    app.router.add_get(route_prefix(service.config.site.url) + "/{path:.*}", page)
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
        service = request.app[SERVICE]
        lang = page_language(request, service)
        page = service.notice(
            lang, exc.status, "Not found", "The page you asked for does not exist."
        )
        response = page_response(page)
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
        return response


# -- operations ------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.StreamResponse:
    ready, body = await service_of(request).health()
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
    text = await service_of(request).metrics()
    return web.Response(
        body=text.encode("utf-8"),
        headers={
            "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
            "Cache-Control": "no-store",
        },
    )
