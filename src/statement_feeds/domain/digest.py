"""Digest messages: render once per distinct digest, then fill in each subscriber cheaply.

A *bundle* is what many subscribers share: the message language and the list of
statements. It is rendered once (jinja2 + the email package for the headers) into
a :class:`MessageTemplate`: a list of byte pieces with a few slots. Filling a slot
for one subscriber costs a handful of ``bytes.join``/``replace`` calls:

* header slots (``To``, ``Message-ID``, ``List-Unsubscribe``) are plain ASCII lines
  built here, never through a parser: ``To`` from the checked parts of the address
  (``core.addresses``), the others after CR/LF and controls are stripped;
* bodies are quoted-printable. QP encodes each line on its own, so every line
  without a per-subscriber value is encoded once per bundle, and only the few
  lines carrying the greeting or the links are encoded per subscriber;
* the MIME boundary (``=_sf_<bundle hash>``) contains ``=_``, which QP output can
  never contain, so it is safe without scanning the bodies, and reproducible.

The pieces, slots and headers are in :mod:`.digest_message`; this module renders
bundles (templates, context) and fills them in (the :class:`Composer`).

Pure: no I/O. The jinja2 Environment, translations and signer come from the caller.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from email.utils import format_datetime, parseaddr
from typing import Protocol

import jinja2

from . import i18n
from .addresses import clean_header_text
from .digest_message import (
    MESSAGE_ID_SLOT,
    TO_SLOT,
    UNSUBSCRIBE_SLOT,
    Markers,
    MessageTemplate,
    Pieces,
    bundle_hash,
    checked_message_id,
    recipient_header,
    static_headers,
)
from .excerpt_links import summary_html_paragraphs, summary_text
from .i18n import Translations
from .statements import Statement
from .template_env import template_environment
from .tokens import Signer, preferences_url, unsubscribe_url

__all__ = [
    "Composer",
    "DigestSettings",
    "MessageTemplate",
    "Preview",
    "Recipient",
    "template_environment",
]

# A bundle: message language, new statements, corrected statements (ids).
_BundleKey = tuple[str, tuple[str, ...], tuple[str, ...]]
TEXT_TEMPLATE = "digest.txt"
HTML_TEMPLATE = "digest.html"


class Recipient(Protocol):
    """What composing needs of a delivery (``ledger.Delivery`` has these fields)."""

    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def lang(self) -> str: ...
    @property
    def statement_ids(self) -> tuple[str, ...]: ...
    @property
    def message_id(self) -> str: ...
    @property
    def corrected_ids(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """The configuration composing needs (built from ``Config`` by the caller)."""

    sender: str  # From header: "Statements <statements@example.org>"
    site_title: str
    site_url: str
    public_url: str  # base of the unsubscribe link
    timezone: tzinfo
    unsubscribe_mailto: str = ""
    language_titles: Mapping[str, str] = field(default_factory=dict)
    feeds_url: str = ""  # the "follow by feed instead" line names <feeds_url><lang>.atom

    def title_for(self, lang: str) -> str:
        return self.language_titles.get(lang) or self.site_title

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def domain(self) -> str:
        return self.sender_address.rpartition("@")[2] or "localhost"

    @property
    def list_id(self) -> str:
        """RFC 2919 List-Id: the site title and ``statements.<site host>``."""
        host = re.sub(r"^https?://([^/:]+).*$", r"\1", self.site_url) or self.domain
        return f"{clean_header_text(self.site_title)} <statements.{host}>"


@dataclass(frozen=True, slots=True)
class Preview:
    text: str
    html: str
    eml: bytes


class Composer:
    """Builds digest messages; ``composer(delivery)`` returns the bytes to send."""

    def __init__(
        self,
        env: jinja2.Environment,
        settings: DigestSettings,
        *,
        translations: Translations,
        signer: Signer,
        statements: Mapping[str, Statement],
        date: datetime,
        cache_size: int = 256,
    ) -> None:
        self._env = env
        self._settings = settings
        self._translations = translations
        self._signer = signer
        self._statements = statements
        self._date = date
        self._cache_size = cache_size
        self._cache: OrderedDict[_BundleKey, MessageTemplate] = OrderedDict()

    def __call__(self, recipient: Recipient) -> bytes:
        return self.compose(recipient)

    def compose(self, recipient: Recipient) -> bytes:
        template = self.template(recipient.lang, recipient.statement_ids, recipient.corrected_ids)
        return self._fill(
            template, recipient.lang, recipient.email, recipient.name, recipient.message_id
        )

    def _fill(
        self, template: MessageTemplate, lang: str, email: str, name: str, message_id: str
    ) -> bytes:
        return template.fill(
            recipient_header(email, name),
            checked_message_id(message_id),
            self.list_unsubscribe(email),
            self.greeting(lang, name),
            self.unsubscribe_link(email, lang),
            preferences_url=self.preferences_link(email, lang),
        )

    def greeting(self, lang: str, name: str) -> str:
        messages = self._translations.for_language(lang)
        display = clean_header_text(name)
        if display:
            return messages.text(i18n.GREETING_NAMED, name=display)
        return messages.text(i18n.GREETING)

    def unsubscribe_link(self, email: str, lang: str = "") -> str:
        """The one-click link; with ``lang`` (in the body), the page opens in it."""
        token = self._signer.unsubscribe_token(email)
        return unsubscribe_url(self._settings.public_url, token, lang)

    def preferences_link(self, email: str, lang: str) -> str:
        token = self._signer.unsubscribe_token(email)
        return preferences_url(self._settings.public_url, token, lang)

    def list_unsubscribe(self, email: str) -> bytes:
        """RFC 2369/8058: the one-click https link, then the mailto when configured."""
        value = f"<{self.unsubscribe_link(email)}>"
        mailto = clean_header_text(self._settings.unsubscribe_mailto).replace(" ", "")
        if mailto:
            token = self._signer.unsubscribe_token(email)
            value += f",\r\n <mailto:{mailto}?subject=unsubscribe%20{token}>"
        return value.encode("ascii")

    def template(
        self, lang: str, statement_ids: tuple[str, ...], corrected_ids: tuple[str, ...] = ()
    ) -> MessageTemplate:
        """The rendered bundle for this language and statement lists (LRU-cached)."""
        key = (lang, statement_ids, corrected_ids)
        template = self._cache.get(key)
        if template is None:
            template = self._build(
                lang,
                [self._statements[i] for i in statement_ids],
                [self._statements[i] for i in corrected_ids],
            )
            self._cache[key] = template
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return template

    def render(
        self,
        lang: str,
        statements: Sequence[Statement],
        greeting: str,
        url: str,
        preferences: str,
        *,
        corrected: Sequence[Statement] = (),
    ) -> tuple[str, str]:
        """Text and HTML bodies with real values (for preview, and to check the fast path)."""
        context = self._context(lang, statements, greeting, url, preferences)
        context.update(self._corrected_context(lang, statements, corrected))
        return (
            self._env.get_template(TEXT_TEMPLATE).render(context),
            self._env.get_template(HTML_TEMPLATE).render(context),
        )

    def _context(
        self, lang: str, statements: Sequence[Statement], greeting: str, url: str, prefs: str
    ) -> dict[str, object]:
        messages = self._translations.for_language(lang)
        title = self._settings.title_for(lang)
        feed_url = f"{self._settings.feeds_url}{lang}.atom" if self._settings.feeds_url else ""
        # Split around the URL, so the HTML part can make it a link.
        feed_before, _, feed_after = messages.text(i18n.FEED_INSTEAD, url="\x00").partition("\x00")
        return {
            "lang": lang,
            "site_title": title,
            "site_url": self._settings.site_url,
            "greeting": greeting,
            "heading": messages.plural(i18n.COUNT, len(statements)),
            "items": [self._item(s, messages, lang) for s in statements],
            "full_statement": messages.text(i18n.FULL_STATEMENT),
            "unsubscribe": messages.text(i18n.UNSUBSCRIBE),
            "why": messages.text(i18n.WHY, title=title),
            "unsubscribe_url": url,
            "preferences": messages.text(i18n.CHANGE_PREFERENCES),
            "preferences_url": prefs,
            "feed_url": feed_url,
            "feed_before": feed_before,
            "feed_after": feed_after,
            "label": lambda label, value: messages.text(i18n.LABELLED, label=label, value=value),
        }

    def _corrected_context(
        self, lang: str, statements: Sequence[Statement], corrected: Sequence[Statement]
    ) -> dict[str, object]:
        """The "Corrected" section; its heading heads the digest when nothing is new."""
        messages = self._translations.for_language(lang)
        heading = messages.plural(i18n.CORRECTED_COUNT, len(corrected))
        items = []
        for statement in corrected:
            item = self._item(statement, messages, lang)
            when = statement.updated.astimezone(self._settings.timezone)
            item["corrected"] = messages.text(i18n.CORRECTED_AT, time=messages.moment(when))
            item["iso_corrected"] = when.isoformat(timespec="minutes")
            items.append(item)
        extra: dict[str, object] = {"corrected_heading": heading, "corrected_items": items}
        if corrected and not statements:
            extra["heading"] = heading
        return extra

    def _item(self, statement: Statement, messages: i18n.Messages, lang: str) -> dict[str, object]:
        local = statement.published.astimezone(self._settings.timezone)
        other = statement.lang.partition("-")[0].lower() != lang.partition("-")[0].lower()
        name = messages.language_name(statement.lang) if other else ""
        return {
            "title": statement.title,
            "date": messages.date(local.date()),
            "iso_date": local.date().isoformat(),
            # Links in the excerpt: URLs after their text here, <a> in the HTML part.
            "summary": summary_text(statement.summary),
            "paragraphs": summary_html_paragraphs(statement.summary),
            "url": statement.url,
            "lang": statement.lang,
            # "(English)" after an item that is not in the digest's language.
            "language_note": messages.text(i18n.IN_LANGUAGE, language=name) if other else "",
        }

    def _build(
        self, lang: str, statements: Sequence[Statement], corrected: Sequence[Statement] = ()
    ) -> MessageTemplate:
        hashed = bundle_hash(lang, statements, corrected)
        markers = Markers.for_bundle(hashed)
        text, html_body = self.render(
            lang,
            statements,
            markers.greeting,
            markers.unsubscribe,
            markers.preferences,
            corrected=corrected,
        )
        boundary = f"=_sf_{hashed[:32]}".encode("ascii")
        pieces = Pieces()
        self._headers(pieces, lang, (len(statements), len(corrected)), boundary)
        for content_type, body, is_html in (("plain", text, False), ("html", html_body, True)):
            pieces.add(
                b"--"
                + boundary
                + b"\r\nContent-Type: text/"
                + content_type.encode()
                + b'; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
            )
            pieces.body(body, markers, is_html=is_html)
            # RFC 2046: the CRLF before a delimiter belongs to the delimiter, so one more
            # is needed for the body to keep its own final line break.
            pieces.add(b"\r\n")
        pieces.add(b"--" + boundary + b"--\r\n")
        return MessageTemplate(pieces.items, markers)

    def _headers(self, pieces: Pieces, lang: str, counts: tuple[int, int], boundary: bytes) -> None:
        messages = self._translations.for_language(lang)
        title = self._settings.title_for(lang)
        new, corrected = counts
        if new or not corrected:
            subject = messages.plural(i18n.SUBJECT, new, title=title)
        else:  # only corrections
            subject = messages.plural(i18n.CORRECTED_SUBJECT, corrected, title=title)
        pieces.add(static_headers([("From", self._settings.sender)]))
        pieces.add(b"To: ")
        pieces.add(TO_SLOT)
        pieces.add(b"\r\n")
        pieces.add(static_headers([("Subject", subject), ("Date", format_datetime(self._date))]))
        pieces.add(b"Message-ID: ")
        pieces.add(MESSAGE_ID_SLOT)
        pieces.add(b"\r\n")
        pieces.add(static_headers([("List-Id", self._settings.list_id)]))
        pieces.add(b"List-Unsubscribe: ")
        pieces.add(UNSUBSCRIBE_SLOT)
        pieces.add(b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        pieces.add(
            b"MIME-Version: 1.0\r\nContent-Language: "
            + clean_header_text(lang).replace(" ", "").encode("ascii", "replace")
            + b'\r\nContent-Type: multipart/alternative; boundary="'
            + boundary
            + b'"\r\n\r\n'
        )

    def preview(
        self,
        lang: str,
        statements: Sequence[Statement],
        email: str,
        name: str,
        corrected: Sequence[Statement] = (),
    ) -> Preview:
        """What ``digest preview`` writes: the text, the HTML and the whole message."""
        text, html_body = self.render(
            lang,
            statements,
            self.greeting(lang, name),
            self.unsubscribe_link(email, lang),
            self.preferences_link(email, lang),
            corrected=corrected,
        )
        message_id = self._signer.message_id(0, email, self._settings.domain)
        eml = self._fill(self._build(lang, statements, corrected), lang, email, name, message_id)
        return Preview(text, html_body, eml)
