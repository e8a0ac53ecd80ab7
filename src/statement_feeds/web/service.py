"""The web side as a service: feeds, pages, sign-up, unsubscribe, preferences, health.

Joins the state store, the signer, the mailer and the templates for the HTTP
handlers (``adapters/http.py``), which only translate requests and responses.
Nothing here knows about aiohttp, so the flows can be read (and reasoned about)
on their own.

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
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from babel import Locale, UnknownLocaleError

from ..clock import Clock
from ..config import Config
from ..digests.mailer import Messenger, make_messenger, reply_status
from ..domain.addresses import Address, header_address
from ..domain.i18n import Messages, Translations
from ..domain.subscribers import email_key
from ..domain.tokens import Signer
from ..domain.web_subscribers import Preferences
from ..errors import ConfigError, DeliveryError
from ..feeds.front_page import FrontPageFile
from ..feeds.front_page_index import FrontEntry
from ..locales import load_translations
from ..logs import event
from ..state.open import open_store
from ..state.secrets import load_keys
from .feed_files import FeedFiles
from .forms import SubscribeForm, language_choices, parse_preferences, parse_subscribe
from .links import SubscriberLinks
from .preferences import current_preferences
from .status import health, metrics
from .store_thread import StoreThread
from .templates import PageTemplates, load_pages

__all__ = ["DEFAULT_LIMITS", "Page", "RateLimits", "WebService", "route_prefix"]

log = logging.getLogger(__name__)

# Long page texts: the English text is the msgid (gettext style), so a missing
# translation still reads well.
CHECK_INBOX = (
    "If the address is valid, a message with a confirmation link is on its way to it. "
    "The subscription starts only when that link is followed."
)
CONFIRMED = "Thank you: your subscription is active."
INVALID_LINK = "This link is not valid: it may be mistyped, expired or already used."
UNSUBSCRIBED = "You are unsubscribed and will receive no more digests."
TRY_LATER = "Please try again later."

CONFIRM_TTL = timedelta(hours=48)
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


# -- the service ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a form handler decided: a page, plus whether a mail went out (tests, logs)."""

    page: Page
    mail_queued: bool = False


class WebService:
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
        self.front = FrontPageFile(config.paths.state)
        self.links = SubscriberLinks(signer, store, self.now)
        self._mail_tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def open(cls, config: Config, clock: Clock, limits: RateLimits = DEFAULT_LIMITS) -> WebService:
        translations = load_translations(config.site.default_language)
        # A missing or broken template fails here, at start, not per visit.
        pages = load_pages(config, translations)
        with open_store(config) as store:  # migrated now, not per visit
            id_key = store.subscriber_id_key()
        return cls(
            config,
            clock,
            signer=Signer(load_keys(config.paths.state), id_key=id_key),
            store=StoreThread(config.paths.state),
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

    # -- common ----------------------------------------------------------------------

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
                tag: _native_name(tag) for tag in [*self.languages(), *context.get("languages", ())]
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

    # -- the start page ------------------------------------------------------------------

    async def home(
        self,
        lang: str,
        base_url: str,
        csrf_cookie: str,
        *,
        status: int = 200,
        errors: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Page:
        page = self.front.current()
        tags = page.tags if page else []
        feeds = [
            {
                "lang": tag,
                "url": f"{self.config.site.feeds_url}{tag}.atom",
                "name": _native_name(tag),
            }
            for tag in tags
        ]
        shown = lang if lang in tags else self.config.site.default_language
        described = page.get(shown) if page else None
        entries = [self._entry(e, lang) for e in (described.latest if described else ())]
        defaults = {"email": "", "languages": [lang], "frequency": "daily"}
        return self.render(
            "web/home.html",
            lang,
            status,
            feeds=feeds,
            entries=entries,
            entries_lang=shown,
            csrf=self.csrf_field(csrf_cookie),
            errors=errors or {},
            values={**defaults, **(values or {})},
            languages=self.languages(),
        )

    def _entry(self, entry: FrontEntry, lang: str) -> dict[str, Any]:
        try:
            moment = datetime.fromisoformat(entry.published).astimezone(self.config.site.timezone)
            date, iso = self.messages(lang).date(moment.date()), moment.date().isoformat()
        except ValueError:
            date = iso = entry.published
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", entry.summary) if p.strip()]
        return {
            "title": entry.title,
            "url": entry.url,
            "date": date,
            "iso_date": iso,
            "paragraphs": paragraphs,
        }

    # -- sign-up (double opt-in) -------------------------------------------------------------

    async def subscribe(
        self, lang: str, base_url: str, csrf_cookie: str, form: Mapping[str, Any], client: str
    ) -> Outcome:
        """Validate, rate-limit and mail a confirmation link.

        The answer is the same page whether or not the address is known, already
        subscribed or over its limit: it must not reveal who subscribes.
        """
        if await self._limited("client", client, self.limits.per_client, self.limits.client_window):
            return Outcome(self.notice(lang, 429, "Too many requests", TRY_LATER))
        parsed = parse_subscribe(
            str(form.get("email", "")),
            list(form.get("languages", [])),
            str(form.get("frequency", "")),
            self.languages(),
        )
        if not isinstance(parsed, SubscribeForm):
            values = {
                "email": str(form.get("email", ""))[:254],
                "languages": [x for x in form.get("languages", []) if x in self.languages()],
                "frequency": str(form.get("frequency", "daily")),
            }
            page = await self.home(
                lang, base_url, csrf_cookie, status=400, errors=parsed, values=values
            )
            return Outcome(page)
        queued = False
        address_limit = self.limits.per_address, self.limits.address_window
        if not await self._limited("address", email_key(parsed.email), *address_limit):
            await self._queue_confirmation(parsed, lang, base_url)
            queued = True
        page = self.notice(lang, 200, "Check your inbox", CHECK_INBOX)
        return Outcome(page, mail_queued=queued)

    async def _limited(self, kind: str, value: str, limit: int, window: timedelta) -> bool:
        # Hashed with the secret key: the table never holds addresses or IPs in the clear.
        bucket = f"{kind}:{self.signer.sign('rate', value, 0).rsplit('.', 1)[1]}"
        now = self.now()
        return await self.store.run(lambda s: s.hit_rate_limit(bucket, now, window, limit))

    async def _queue_confirmation(self, form: SubscribeForm, lang: str, base_url: str) -> None:
        token_id = secrets.token_urlsafe(18)
        now = self.now()
        expires = now + CONFIRM_TTL
        prefs = Preferences(form.languages, form.frequency)
        await self.store.run(
            lambda s: s.add_confirmation(token_id, form.email, prefs, now, expires)
        )
        token = self.signer.sign("confirm", token_id, int(expires.timestamp()))
        message = self.confirmation_email(
            form.address, lang, f"{base_url}confirm?token={token}&lang={lang}"
        )
        # Sent in the background: the response time must not depend on the mail server
        # (nor, through it, reveal anything about the address).
        task = asyncio.create_task(self._send(form.address, message))
        self._mail_tasks.add(task)
        task.add_done_callback(self._mail_tasks.discard)

    def confirmation_email(self, address: Address, lang: str, url: str) -> bytes:
        """The confirmation message; ``To`` is built from the checked parts of ``address``."""
        messages = self.messages(lang)
        title = self.config.site.language_titles.get(lang) or self.config.site.title
        text = self.pages.render(
            "confirm.txt",
            _=messages.text,
            lang=lang,
            site_title=title,
            confirm_url=url,
            hours=int(CONFIRM_TTL.total_seconds() // 3600),
        )
        message = EmailMessage(policy=SMTP)
        sender = self.config.digest.sender
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        message["From"] = sender
        message["To"] = header_address(address)  # an object: nothing parsed, nothing decoded
        message["Subject"] = messages.text("Confirm your subscription to {title}", title=title)
        message["Date"] = format_datetime(self.now())
        message["Message-ID"] = make_msgid("confirm", domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        message["Content-Language"] = lang
        message.set_content(text, charset="utf-8")
        return message.as_bytes()

    async def _send(self, address: Address, message: bytes) -> None:
        """Hand the confirmation over; never raises (a background task nobody awaits).

        The visitor can simply sign up again. The address is never logged: not by us,
        not in a traceback, and not through a server's reply, which often quotes it
        (for those only the reply code and enhanced status are logged).
        """
        try:
            sender = parseaddr(self.config.digest.sender)[1]
            await self.messenger.send(sender, address.email, message)
            event(log, logging.INFO, "web.confirmation_sent")
        except DeliveryError as exc:
            event(log, logging.WARNING, "web.confirmation_failed", **_safe_details(exc))
        except ConfigError as exc:  # our settings (TLS, login), in words that name no address
            event(log, logging.ERROR, "web.confirmation_failed", error=str(exc))
        except Exception as exc:  # an unretrieved task exception would print a traceback
            event(log, logging.ERROR, "web.confirmation_failed", error=type(exc).__name__)

    async def confirm_page(self, lang: str, token: str) -> Page:
        if self.signer.verify("confirm", token, self.now().timestamp()) is None:
            return self.invalid_link(lang)
        return self.render("web/confirm.html", lang, token=token)

    async def confirm(self, lang: str, token: str, base_url: str) -> Page:
        token_id = self.signer.verify("confirm", token, self.now().timestamp())
        if token_id is None:
            return self.invalid_link(lang)
        now = self.now()
        subscriber = await self.store.run(lambda s: s.confirm_subscription(token_id, now))
        if subscriber is None:  # used before, expired in the store, or never issued
            return self.invalid_link(lang)
        event(log, logging.INFO, "web.subscription_confirmed")
        return self.notice(
            lang,
            200,
            "Subscription confirmed",
            CONFIRMED,
            preferences_url=await self.links.preferences_url(base_url, subscriber.email),
        )

    def invalid_link(self, lang: str) -> Page:
        return self.notice(lang, 400, "Invalid link", INVALID_LINK)

    # -- unsubscribe (RFC 8058) ----------------------------------------------------------------

    async def unsubscribe_page(self, lang: str, token: str, base_url: str) -> Page:
        address = await self.links.unsubscribe_address(token)
        if address is None:
            return self.invalid_link(lang)
        return self.render(
            "web/unsubscribe.html",
            lang,
            token=token,
            email=address,
            preferences_url=await self.links.preferences_url(base_url, address),
        )

    async def unsubscribe(self, lang: str, token: str) -> Page:
        """Unsubscribe now; doing it again changes nothing and answers the same."""
        address = await self.links.unsubscribe_address(token)
        if address is None:
            return self.invalid_link(lang)
        now = self.now()
        await self.store.run(lambda s: s.unsubscribe(address, now))
        event(log, logging.INFO, "web.unsubscribed")
        return self.notice(lang, 200, "Unsubscribed", UNSUBSCRIBED)

    # -- preferences ------------------------------------------------------------------------

    async def preferences_page(
        self, lang: str, token: str, csrf_cookie: str, *, saved: bool = False, status: int = 200
    ) -> Page:
        address = await self.links.preferences_address(token)
        if address is None:
            return self.invalid_link(lang)
        prefs = await current_preferences(self.config, self.store, address)
        return self.render(
            "web/preferences.html",
            lang,
            status,
            token=token,
            email=address,
            languages=language_choices(self.languages(), prefs.languages),
            chosen=list(prefs.languages),
            frequency=prefs.frequency,
            csrf=self.csrf_field(csrf_cookie),
            saved=saved,
        )

    async def save_preferences(
        self, lang: str, token: str, csrf_cookie: str, form: Mapping[str, Any]
    ) -> Page:
        address = await self.links.preferences_address(token)
        if address is None:
            return self.invalid_link(lang)
        current = await current_preferences(self.config, self.store, address)
        parsed = parse_preferences(
            list(form.get("languages", [])),
            str(form.get("frequency", "")),
            language_choices(self.languages(), current.languages),
        )
        if parsed is None:
            return await self.preferences_page(lang, token, csrf_cookie, status=400)
        prefs, now = Preferences(*parsed), self.now()
        await self.store.run(lambda s: s.set_preferences(address, prefs, now))
        return await self.preferences_page(lang, token, csrf_cookie, saved=True)

    # -- health and metrics -----------------------------------------------------------------

    async def health(self) -> tuple[bool, dict[str, Any]]:
        return await health(self.store, self.front, self.feeds)

    async def metrics(self) -> str:
        return await metrics(self.store, self.front, self.feeds)


def _safe_details(error: DeliveryError) -> dict[str, Any]:
    """What went wrong, without the words of a server's reply (they may quote the address)."""
    status = reply_status(error)
    if status is None:  # no reply: a network or Maildir error, in the OS's own words
        return {"error": str(error)}
    code, enhanced = status
    return {"error": type(error).__name__, "code": code, "status": enhanced}


def _native_name(tag: str) -> str:
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return tag
    name = locale.get_display_name(locale) or tag
    return str(name[:1].upper() + name[1:])
