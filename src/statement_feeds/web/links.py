"""The subscriber behind a link's token, and links for a subscriber.

Tokens carry an opaque subscriber id (``core.tokens.subscriber_id``), never the
address: links end up in proxy logs, browser history and referrers. The state
store maps an id back to its address.

Old tokens, from before ids, carried the address (base64):

* unsubscribe tokens (``<address>.<mac>``) keep unsubscribing, with no end date,
  because digests already delivered carry them;
* preferences tokens (the address as payload) keep working until they expire,
  30 days after they were issued; new ones are never issued.

A digest's "change preferences" link carries its unsubscribe token, which the
preferences page accepts as well as its own (expiring) tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import quote

from ..domain.tokens import Signer
from .store_thread import StoreThread

__all__ = ["PREFERENCES_TTL", "SubscriberLinks"]

PREFERENCES_TTL = timedelta(days=30)


class SubscriberLinks:
    def __init__(self, signer: Signer, store: StoreThread, now: Callable[[], datetime]) -> None:
        self.signer = signer
        self.store = store
        self.now = now

    async def unsubscribe_address(self, token: str) -> str | None:
        """The (case-folded) address an unsubscribe token was issued for, else None."""
        if not token:
            return None
        sid = self.signer.verify_unsubscribe(token)
        if sid is not None:
            return await self.store.run(lambda s: s.address_for_id(sid))
        return self.signer.verify_legacy_unsubscribe(token)

    async def preferences_address(self, token: str) -> str | None:
        """The address a preferences token is valid for now, else None.

        A digest's unsubscribe token is accepted too (its "change preferences" link): it
        never expires, and its holder could already get a preferences link from the
        unsubscribe page. Old address-carrying unsubscribe tokens are not.
        """
        payload = self.signer.verify("preferences", token, self.now().timestamp())
        if payload is None:
            sid = self.signer.verify_unsubscribe(token) if token else None
            if sid is None:
                return None
            return await self.store.run(lambda s: s.address_for_id(sid))
        if "@" in payload:  # an old token, with the address inside: valid until it expires
            return payload
        return await self.store.run(lambda s: s.address_for_id(payload))

    async def preferences_url(self, base_url: str, address: str, lang: str = "") -> str:
        """A preferences link for ``address``, valid for :data:`PREFERENCES_TTL`; with
        ``lang``, the page opens in it (if it is one of the subscriber's languages)."""
        sid = self.signer.subscriber_id(address)
        # Every address the store knows has its id mapped; an address reached through an
        # old token may not be known yet, so make sure before handing out the link.
        if await self.store.run(lambda s: s.address_for_id(sid)) is None:
            await self.store.run(lambda s: s.remember_address_id(address))
        expires = int((self.now() + PREFERENCES_TTL).timestamp())
        url = f"{base_url}preferences?token={self.signer.sign('preferences', sid, expires)}"
        return f"{url}&lang={quote(lang, safe='')}" if lang else url
