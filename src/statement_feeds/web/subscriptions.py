"""What a subscriber's links lead to: unsubscribing (RFC 8058) and the preferences page."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..domain.web_subscribers import Preferences
from ..logs import event
from .forms import language_choices, parse_preferences
from .preferences import current_preferences
from .service_base import Page, ServiceBase

__all__ = ["UNSUBSCRIBED", "Subscriptions"]

log = logging.getLogger("statement_feeds.web.service")  # the name operators filter on

UNSUBSCRIBED = "You are unsubscribed and will receive no more digests."


class Subscriptions(ServiceBase):
    """Unsubscribing and changing preferences, through a subscriber's signed links."""

    async def subscriber_language(self, address: str, requested: str, fallback: str) -> str:
        """The language of a subscriber's page: ``requested`` (the ``lang`` of the digest's
        link) if it is one of the subscriber's languages the site offers, else their first
        such language; only if they have none, ``fallback`` (the visitor's Accept-Language).

        Looked up, not trusted: an edited ``lang`` cannot show the page in a language the
        subscriber did not choose.
        """
        prefs = await current_preferences(self.config, self.store, address)
        offered = [tag for tag in prefs.languages if tag in self.languages()]
        wanted = requested.strip().lower()
        for tag in offered:
            if tag.lower() == wanted:
                return tag
        return offered[0] if offered else fallback

    async def unsubscribe_page(
        self, lang: str, token: str, base_url: str, *, requested: str = ""
    ) -> Page:
        address = await self.links.unsubscribe_address(token)
        if address is None:
            return self.invalid_link(lang)
        lang = await self.subscriber_language(address, requested, lang)
        return self.render(
            "web/unsubscribe.html",
            lang,
            token=token,
            email=address,
            preferences_url=await self.links.preferences_url(base_url, address, lang),
        )

    async def unsubscribe(self, lang: str, token: str, *, requested: str = "") -> Page:
        """Unsubscribe now; doing it again changes nothing and answers the same."""
        address = await self.links.unsubscribe_address(token)
        if address is None:
            return self.invalid_link(lang)
        lang = await self.subscriber_language(address, requested, lang)
        now = self.now()
        await self.store.run(lambda s: s.unsubscribe(address, now))
        event(log, logging.INFO, "web.unsubscribed")
        return self.notice(lang, 200, "Unsubscribed", UNSUBSCRIBED)

    # -- preferences ------------------------------------------------------------------------

    async def preferences_page(
        self,
        lang: str,
        token: str,
        csrf_cookie: str,
        *,
        saved: bool = False,
        status: int = 200,
        requested: str = "",
    ) -> Page:
        address = await self.links.preferences_address(token)
        if address is None:
            return self.invalid_link(lang)
        lang = await self.subscriber_language(address, requested, lang)
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
        requested = str(form.get("lang", ""))
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
            return await self.preferences_page(
                lang, token, csrf_cookie, status=400, requested=requested
            )
        prefs, now = Preferences(*parsed), self.now()
        await self.store.run(lambda s: s.set_preferences(address, prefs, now))
        return await self.preferences_page(
            lang, token, csrf_cookie, saved=True, requested=requested
        )
