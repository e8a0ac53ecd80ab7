"""What every flow of the web service shares: settings, the page texts and helpers.

:class:`ServiceBase` holds the parts :class:`~.service.WebService` is made of (see
there) and renders pages in a visitor's language; the flows (:mod:`.signup`,
:mod:`.subscriptions`) build on it. Nothing here knows about aiohttp.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock
from ..config import Config
from ..digests.mailer import Messenger
from ..domain.i18n import Messages, Translations, native_name
from ..domain.tokens import Signer
from ..feeds.front_page import FrontPageFile
from .feed_files import FeedFiles
from .links import SubscriberLinks
from .page_files import PageFiles
from .store_thread import StoreThread
from .templates import PageTemplates

__all__ = [
    "CSRF_TTL",
    "DEFAULT_LIMITS",
    "INVALID_LINK",
    "Page",
    "RateLimits",
    "ServiceBase",
    "native_name",
    "route_prefix",
]

INVALID_LINK = "This link is not valid: it may be mistyped, expired or already used."
CSRF_TTL = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Sign-ups allowed per address and per client in a sliding window."""

    per_address: int = 3
    address_window: timedelta = timedelta(hours=24)
    per_client: int = 10
    client_window: timedelta = timedelta(hours=1)


DEFAULT_LIMITS = RateLimits()


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered HTML page and its status."""

    status: int
    html: str


def route_prefix(public_url: str) -> str:
    """``https://example.org/newsletter/`` → ``/newsletter`` (``""`` at the root)."""
    path = re.sub(r"^https?://[^/]+", "", public_url)
    return "/" + path.strip("/") if path.strip("/") else ""


class ServiceBase:
    """The parts of the web service, and the helpers every flow uses."""

    config: Config
    clock: Clock
    signer: Signer
    store: StoreThread
    messenger: Messenger
    translations: Translations
    pages: PageTemplates
    limits: RateLimits
    feeds: FeedFiles
    page_files: PageFiles | None  # None: [pages] enabled = false
    front: FrontPageFile
    links: SubscriberLinks
    _mail_tasks: set[asyncio.Task[None]]

    def now(self) -> datetime:
        return self.clock()

    def languages(self) -> list[str]:
        """Languages a visitor can pick: those the last build wrote a feed for, else the
        default language."""
        page = self.front.current()
        return (page.tags if page else []) or [self.config.site.default_language]

    def page_language(self, lang: str) -> str:
        """``lang`` if the site offers it, else the default language.

        The handlers already pick only offered languages (``adapters.http._lang``);
        this keeps any other caller from putting a stray tag into a page.
        """
        return lang if lang in self.languages() else self.config.site.default_language

    def messages(self, lang: str) -> Messages:
        return self.translations.for_language(lang)

    def base_url(self, fallback: str) -> str:
        return self.config.http.public_url or fallback

    def csrf_field(self, cookie: str) -> str:
        expires = int((self.now() + CSRF_TTL).timestamp())
        return self.signer.sign("csrf", cookie, expires)

    def csrf_ok(self, cookie: str | None, submitted: str) -> bool:
        if not cookie:
            return False
        value = self.signer.verify("csrf", submitted, self.now().timestamp())
        return value is not None and secrets.compare_digest(value, cookie)

    def render(self, name: str, lang: str, status: int = 200, **context: Any) -> Page:
        lang = self.page_language(lang)
        messages = self.messages(lang)
        site = self.config.site
        html = self.pages.render(
            name,
            lang=lang,
            _=messages.text,
            site_title=site.language_titles.get(lang) or site.title,
            site_url=site.url,
            # The site's languages, and any a form offers besides (a subscriber's own).
            language_names={
                tag: native_name(tag) for tag in [*self.languages(), *context.get("languages", ())]
            },
            **context,
        )
        return Page(status, html)

    def notice(self, lang: str, status: int, heading: str, text: str, **extra: Any) -> Page:
        messages = self.messages(lang)
        return self.render(
            "web/notice.html",
            lang,
            status,
            heading=messages.text(heading),
            text=messages.text(text, **extra),
            **extra,
        )

    def invalid_link(self, lang: str) -> Page:
        return self.notice(lang, 400, "Invalid link", INVALID_LINK)
