"""The start page and signing up (double opt-in): the form, the confirmation mail, the
confirmation link."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from ..digests.envelope import confirmation_sender
from ..digests.mailer import reply_status
from ..domain.addresses import Address, header_address
from ..domain.excerpt_links import summary_html_paragraphs
from ..domain.i18n import IN_LANGUAGE
from ..domain.subscribers import email_key
from ..domain.web_subscribers import Preferences
from ..errors import ConfigError, DeliveryError
from ..feeds.front_page_index import FrontEntry
from ..logs import event
from .forms import SubscribeForm, parse_subscribe
from .service_base import Page, ServiceBase, native_name

__all__ = ["CHECK_INBOX", "CONFIRMED", "CONFIRM_TTL", "TRY_LATER", "Outcome", "SignUp"]

log = logging.getLogger("statement_feeds.web.service")  # the name operators filter on

# Long page texts: the English text is the msgid (gettext style), so a missing
# translation still reads well.
CHECK_INBOX = (
    "If the address is valid, a message with a confirmation link is on its way to it. "
    "The subscription starts only when that link is followed."
)
CONFIRMED = "Thank you: your subscription is active."
TRY_LATER = "Please try again later."

CONFIRM_TTL = timedelta(hours=48)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a form handler decided: a page, plus whether a mail went out (tests, logs)."""

    page: Page
    mail_queued: bool = False


class SignUp(ServiceBase):
    """The start page, the sign-up form and the confirmation link."""

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
                "name": native_name(tag),
            }
            for tag in tags
        ]
        shown = lang if lang in tags else self.config.site.default_language
        described = page.get(shown) if page else None
        # The visitor's language has no feed (yet): the default language's, each marked.
        shown_in = self.page_language(lang)
        note = "" if shown == shown_in else self.language_note(shown_in, shown)
        entries = [self._entry(e, lang, note) for e in (described.latest if described else ())]
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

    def language_note(self, lang: str, other: str) -> str:
        """ "(English)" in ``lang``: said of an item in language ``other``."""
        messages = self.messages(lang)
        return messages.text(IN_LANGUAGE, language=messages.language_name(other))

    def _entry(self, entry: FrontEntry, lang: str, note: str) -> dict[str, Any]:
        try:
            moment = datetime.fromisoformat(entry.published).astimezone(self.config.site.timezone)
            date, iso = self.messages(lang).date(moment.date()), moment.date().isoformat()
        except ValueError:
            date = iso = entry.published
        return {
            "title": entry.title,
            "url": entry.url,
            "date": date,
            "iso_date": iso,
            "paragraphs": summary_html_paragraphs(entry.summary),  # links kept
            "language_note": note,
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
            plain = parseaddr(self.config.digest.sender)[1]
            # VERP if set, signed with the store's keys (as the Signer's links are)
            sender = confirmation_sender(self.config, plain, address.email, self.signer.keys)
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
            preferences_url=await self.links.preferences_url(base_url, subscriber.email, lang),
        )


def _safe_details(error: DeliveryError) -> dict[str, Any]:
    """What went wrong, without the words of a server's reply (they may quote the address)."""
    status = reply_status(error)
    if status is None:  # no reply: a network or Maildir error, in the OS's own words
        return {"error": str(error)}
    code, enhanced = status
    return {"error": type(error).__name__, "code": code, "status": enhanced}
