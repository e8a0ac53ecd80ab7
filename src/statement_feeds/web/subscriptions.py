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
