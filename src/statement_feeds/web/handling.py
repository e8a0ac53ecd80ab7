"""What every handler does with a request: its service, language, base URL, CSRF
cookie and form, and how a page becomes a response (with the pages' security headers)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from .forms import choose_language
from .service import Page, WebService, route_prefix

__all__ = [
    "CSRF_COOKIE",
    "PAGE_HEADERS",
    "PROXIES",
    "SERVICE",
    "base_url",
    "csrf_cookie",
    "page_language",
    "page_response",
    "read_form",
    "requested_language",
    "service_of",
    "visitor_language",
    "with_cookie",
]

CSRF_COOKIE = "sf_csrf"
SERVICE: web.AppKey[WebService] = web.AppKey("service", WebService)
PROXIES: web.AppKey[int] = web.AppKey("proxies", int)

# Pages: no scripts at all, forms only to ourselves, never framed. Tokens travel in
# URLs, so no Referer may carry them to the statements' site.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def service_of(request: web.Request) -> WebService:
    return request.app[SERVICE]


def page_language(request: web.Request, service: WebService, explicit: str | None = None) -> str:
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


def visitor_language(request: web.Request, service: WebService) -> str:
    """The visitor's language by Accept-Language alone: the fallback of the pages a
    subscriber's link leads to, which look the subscriber's own languages up."""
    return choose_language(
        None,
        request.headers.get("Accept-Language", ""),
        service.languages(),
        service.config.site.default_language,
    )


def requested_language(request: web.Request, form: dict[str, Any] | None = None) -> str:
    """The ``lang`` a link or form asks for, as sent (checked against the subscriber's
    languages by the service; a long value is cut, it can only be a short tag)."""
    value = (form or {}).get("lang") or request.query.get("lang", "")
    return str(value)[:35]


def base_url(request: web.Request, service: WebService) -> str:
    prefix = route_prefix(service.config.http.public_url)
    return service.base_url(f"{request.scheme}://{request.host}{prefix}/")


def page_response(page: Page, *, cache: str = "no-store") -> web.Response:
    response = web.Response(
        text=page.html, status=page.status, content_type="text/html", charset="utf-8"
    )
    response.headers.update(PAGE_HEADERS)
    response.headers["Cache-Control"] = cache
    return response


def csrf_cookie(request: web.Request) -> tuple[str, bool]:
    """The visitor's CSRF cookie value, and whether it is new (to be set)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if re.fullmatch(r"[A-Za-z0-9_-]{22,64}", value):
        return value, False
    return secrets.token_urlsafe(24), True


def with_cookie(response: web.Response, service: WebService, value: str, new: bool) -> web.Response:
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


async def read_form(request: web.Request) -> dict[str, Any]:
    data: MultiDictProxy[Any] = await request.post()
    form: dict[str, Any] = {k: str(v) for k, v in data.items() if isinstance(v, str)}
    form["languages"] = [str(v) for v in data.getall("languages", []) if isinstance(v, str)]
    return form
