"""The page handlers: start page, sign-up and its confirmation, unsubscribe, preferences.

Each only translates between HTTP and :class:`~.service.WebService`.
"""

from __future__ import annotations

from aiohttp import web

from .forms import client_address
from .handling import (
    PROXIES,
    base_url,
    csrf_cookie,
    page_language,
    page_response,
    read_form,
    requested_language,
    service_of,
    visitor_language,
    with_cookie,
)

__all__ = [
    "confirm",
    "confirm_page",
    "home",
    "preferences_page",
    "save_preferences",
    "subscribe",
    "unsubscribe",
    "unsubscribe_page",
]


async def home(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    cookie, new = csrf_cookie(request)
    page = await service.home(page_language(request, service), base_url(request, service), cookie)
    return with_cookie(page_response(page), service, cookie, new)


async def subscribe(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    form = await read_form(request)
    lang = page_language(request, service, form.get("lang"))
    cookie, new = csrf_cookie(request)
    base = base_url(request, service)
    if new or not service.csrf_ok(cookie, form.get("csrf", "")):
        # A missing or foreign token: show the form again with a fresh one.
        page = await service.home(lang, base, cookie, status=403, errors={"csrf": "csrf"})
        return with_cookie(page_response(page), service, cookie, new)
    client = client_address(request.remote, request.headers, request.app[PROXIES])
    outcome = await service.subscribe(lang, base, cookie, form, client)
    return with_cookie(page_response(outcome.page), service, cookie, new)


async def confirm_page(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    lang = page_language(request, service)
    return page_response(await service.confirm_page(lang, request.query.get("token", "")))


async def confirm(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    form = await read_form(request)
    lang = page_language(request, service, form.get("lang"))
    token = form.get("token") or request.query.get("token", "")
    return page_response(await service.confirm(lang, token, base_url(request, service)))


async def unsubscribe_page(request: web.Request) -> web.StreamResponse:
    """Shows a button; never unsubscribes (mail scanners follow every GET link)."""
    service = service_of(request)
    page = await service.unsubscribe_page(
        visitor_language(request, service),
        request.query.get("token", ""),
        base_url(request, service),
        requested=requested_language(request),
    )
    return page_response(page)


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    """RFC 8058 one-click: the token authorises, so no cookie or CSRF token is needed
    (mail providers POST without either)."""
    service = service_of(request)
    form = await read_form(request)
    lang = visitor_language(request, service)
    if form.get("List-Unsubscribe") != "One-Click":
        return page_response(service.invalid_link(lang))
    token = request.query.get("token") or form.get("token", "")
    requested = requested_language(request)
    return page_response(await service.unsubscribe(lang, token, requested=requested))


async def preferences_page(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    cookie, new = csrf_cookie(request)
    page = await service.preferences_page(
        visitor_language(request, service),
        request.query.get("token", ""),
        cookie,
        requested=requested_language(request),
    )
    return with_cookie(page_response(page), service, cookie, new)


async def save_preferences(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    form = await read_form(request)
    lang = visitor_language(request, service)
    cookie, new = csrf_cookie(request)
    token = form.get("token") or request.query.get("token", "")
    if new or not service.csrf_ok(cookie, form.get("csrf", "")):
        requested = requested_language(request, form)
        page = await service.preferences_page(lang, token, cookie, status=403, requested=requested)
        return with_cookie(page_response(page), service, cookie, new)
    page = await service.save_preferences(
        lang, token, cookie, {**form, "lang": requested_language(request, form)}
    )
    return with_cookie(page_response(page), service, cookie, new)
