"""The web side as a service: feeds, pages, sign-up, unsubscribe, preferences, health.

Joins the state store, the signer, the mailer and the templates for the HTTP
handlers (``adapters/http.py``), which only translate requests and responses.
Nothing here knows about aiohttp, so the flows can be read (and reasoned about)
on their own.

The flows are in their own modules, joined here by inheritance: :mod:`.signup` (the
start page, sign-up, confirmation), :mod:`.subscriptions` (unsubscribe, preferences);
what they share (page rendering, CSRF, the texts) is :mod:`.service_base`.

Tokens (all HMAC, ``core.tokens.Signer``, keys rotated via ``adapters.secrets``):

* unsubscribe: the digests' own token, a subscriber id + MAC, never expiring (old
  digests must keep working; ``web_links`` resolves it, and the older format too);
* ``confirm``: a random sign-up id, 48 h, single-use (the store marks it consumed);
* ``preferences``: a subscriber id, 30 days, reusable until it expires;
* ``csrf``: the value of the visitor's CSRF cookie, 2 h (double-submit, signed).

Feed data for the pages (languages, latest statements) comes from the index each
build writes beside its state (``adapters.front_page``): the pages show what the
feeds publish, and the web side parses neither statements nor feed XML.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..clock import Clock
from ..config import Config
from ..digests.mailer import Messenger, make_messenger
from ..domain.i18n import Translations
from ..domain.tokens import Signer
from ..feeds.front_page import FrontPageFile
from ..locales import load_translations
from ..state.open import open_store
from .feed_files import FeedFiles
from .links import SubscriberLinks
from .page_files import PageFiles
from .service_base import CSRF_TTL, DEFAULT_LIMITS, INVALID_LINK, Page, RateLimits, route_prefix
from .signup import CHECK_INBOX, CONFIRM_TTL, CONFIRMED, TRY_LATER, Outcome, SignUp
from .status import health, metrics
from .store_thread import StoreThread
from .subscriptions import UNSUBSCRIBED, Subscriptions
from .templates import PageTemplates, load_pages

__all__ = [  # what moved to the flows' modules stays importable from here
    "CHECK_INBOX",
    "CONFIRMED",
    "CONFIRM_TTL",
    "CSRF_TTL",
    "DEFAULT_LIMITS",
    "INVALID_LINK",
    "TRY_LATER",
    "UNSUBSCRIBED",
    "Outcome",
    "Page",
    "RateLimits",
    "WebService",
    "route_prefix",
]


class WebService(SignUp, Subscriptions):
    """Everything the HTTP handlers call. Create with :meth:`open`, end with :meth:`close`."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        signer: Signer,
        store: StoreThread,
        messenger: Messenger,
        translations: Translations,
        pages: PageTemplates,
        limits: RateLimits = DEFAULT_LIMITS,
    ) -> None:
        self.config = config
        self.clock = clock
        self.signer = signer
        self.store = store
        self.messenger = messenger
        self.translations = translations
        self.pages = pages
        self.limits = limits
        self.feeds = FeedFiles(config.paths.output / "feeds")
        self.page_files = PageFiles(config.paths.output) if config.pages.enabled else None
        self.front = FrontPageFile(config.paths.state)
        self.links = SubscriberLinks(signer, store, self.now)
        self._mail_tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def open(cls, config: Config, clock: Clock, limits: RateLimits = DEFAULT_LIMITS) -> WebService:
        translations = load_translations(config.site.default_language)
        # A missing or broken template fails here, at start, not per visit.
        pages = load_pages(config, translations)
        with open_store(config) as store:  # migrated now, not per visit
            id_key, keys = store.subscriber_id_key(), store.signing_keys()
        return cls(
            config,
            clock,
            signer=Signer(keys, id_key=id_key),
            store=StoreThread(config),
            messenger=make_messenger(config.smtp, config.paths.outbox),
            translations=translations,
            pages=pages,
            limits=limits,
        )

    def check_templates(self, config: Config) -> PageTemplates:
        """The pages' templates as ``config`` names them, checked; ConfigError if any is
        broken (the daemon's reload: nothing switches until every part is valid)."""
        return load_pages(config, self.translations)

    def use_templates(self, pages: PageTemplates) -> None:
        self.pages = pages

    async def close(self) -> None:
        """Let queued confirmation mails finish, then release the mailer and the store."""
        if self._mail_tasks:
            await asyncio.gather(*self._mail_tasks, return_exceptions=True)
        await self.messenger.close()
        await self.store.close()

    # -- health and metrics -----------------------------------------------------------------

    async def health(self) -> tuple[bool, dict[str, Any]]:
        return await health(self.store, self.front, self.feeds, self.config.state.url)

    async def metrics(self) -> str:
        return await metrics(self.store, self.front, self.feeds, self.config)
