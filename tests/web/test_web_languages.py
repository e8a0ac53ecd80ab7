"""The subscriber's language on the pages (issue 14): the pages a digest links to open
in the digest's language, items in another language say so, the start page's form
comes first with its privacy note. Real server, real SQLite, real aiosmtpd."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

from smtp_server import RecordingServer
from statement_feeds.domain.excerpts import excerpt
from statement_feeds.feeds.front_page_index import FrontEntry
from statement_feeds.web.templates import load_pages


def _test_app() -> ModuleType:
    # By file: the helpers of test_app.py (a server on a loopback port, a built site).
    path = Path(__file__).with_name("test_app.py")
    spec = importlib.util.spec_from_file_location("_test_app_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_app = _test_app()
Site = _app.Site
run_site = _app.run_site


@pytest.fixture
def smtp() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def test_start_page_has_the_form_above_the_statements_with_a_privacy_note(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        for lang, note in (
            ("en", "We keep only your address, languages and frequency."),
            ("ru", "Мы храним только ваш адрес, языки и частоту."),
        ):
            _, _, body = await site.get(f"?lang={lang}")
            page = body.decode()
            form, statements = page.index('action="subscribe"'), page.index("<article")
            assert form < statements, "the subscribe form comes before the statements"
            privacy = page.index(note)
            assert form < privacy < page.index("</form>")

    run_site(tmp_path, smtp, scenario)


LINKED = "[a & b](https://example.org/a) c\n\n[d](javascript:e())"
EN_BROWSER = {"Accept-Language": "en-US,en;q=0.9"}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _csv(site: Site, rows: str) -> None:
    (site.config.paths.subscribers / "list.csv").write_text(
        "email,name,languages,frequency\n" + rows, encoding="utf-8"
    )


def _html_lang(body: bytes) -> str:
    match = re.search(rb'<html lang="([^"]+)">', body)
    assert match, body[:200]
    return match[1].decode()


def _link(body: bytes, page: str) -> str:
    match = re.search(rf'href="[^"]*({page}\?token=[^"]+)"'.encode(), body)
    assert match, body
    return match[1].decode().replace("&amp;", "&")


def test_a_digests_links_open_in_the_digests_language_not_the_browsers(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        _csv(site, "ru@example.org,Rita,ru,daily\n")
        token = site.unsubscribe_token("ru@example.org")
        status, _, page = await site.get(f"unsubscribe?token={token}&lang=ru", headers=EN_BROWSER)
        assert status == 200 and _html_lang(page) == "ru" and "Отписаться" in page.decode()
        # Its one-click form posts the language too.
        assert f'action="unsubscribe?token={token}&amp;lang=ru"'.encode() in page
        # The way on to the preferences page keeps the language.
        prefs = _link(page, "preferences")
        assert prefs.endswith("&lang=ru")
        status, _, page = await site.get(prefs, headers=EN_BROWSER)
        assert status == 200 and _html_lang(page) == "ru" and b'name="lang" value="ru"' in page
        status, _, page = await site.post(
            f"unsubscribe?token={token}&lang=ru", data=ONE_CLICK, headers=EN_BROWSER
        )
        assert status == 200 and _html_lang(page) == "ru"
        assert "Подписка отменена" in page.decode()

    run_site(tmp_path, smtp, scenario)


def test_the_page_language_is_looked_up_so_a_tampered_or_unknown_lang_falls_back(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        _csv(site, 'ru@example.org,,ru,daily\nboth@example.org,,"en, ru",daily\n')
        ru_only = site.unsubscribe_token("ru@example.org")
        both = site.unsubscribe_token("both@example.org")
        # Not one of the subscriber's languages (though the site offers it), unknown,
        # junk, or missing: the subscriber's own first language, not the browser's.
        for lang in ("en", "de", "xx", "%3Cscript%3E", "r" * 5000, ""):
            _, _, page = await site.get(
                f"unsubscribe?token={ru_only}&lang={lang}", headers=EN_BROWSER
            )
            assert _html_lang(page) == "ru", lang
            assert b"<script>" not in page and b"rrrrrrrr" not in page
        for lang, shown in (("ru", "ru"), ("RU", "ru"), ("en", "en"), ("de", "en"), ("", "en")):
            _, _, page = await site.get(
                f"unsubscribe?token={both}&lang={lang}", headers={"Accept-Language": "ru"}
            )
            assert _html_lang(page) == shown, lang
        # A token that does not verify: nobody to look up, so Accept-Language decides,
        # and the link's lang is not trusted.
        status, _, page = await site.get(
            f"unsubscribe?token={ru_only[:-2]}&lang=ru", headers=EN_BROWSER
        )
        assert status == 400 and _html_lang(page) == "en"
        status, _, page = await site.get(
            "preferences?token=bad.token&lang=en", headers={"Accept-Language": "ru"}
        )
        assert status == 400 and _html_lang(page) == "ru"

    run_site(tmp_path, smtp, scenario)


def test_an_address_with_none_of_the_sites_languages_gets_the_browsers(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        _csv(site, "de@example.org,,de,daily\n")  # the site publishes en and ru only
        token = site.unsubscribe_token("de@example.org")
        for accept, shown in (("ru", "ru"), ("en", "en")):
            _, _, page = await site.get(
                f"unsubscribe?token={token}&lang=de", headers={"Accept-Language": accept}
            )
            assert _html_lang(page) == shown

    run_site(tmp_path, smtp, scenario)


def test_the_digests_preferences_link_works_without_expiring_and_saves(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        _csv(site, 'ru@example.org,,"ru, en",daily\n')
        token = site.unsubscribe_token("ru@example.org")
        status, _, page = await site.get(f"preferences?token={token}&lang=ru", headers=EN_BROWSER)
        assert status == 200 and _html_lang(page) == "ru"
        assert b'value="ru" checked' in page and b'value="en" checked' in page
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert csrf
        form = {
            "token": token,
            "languages": "ru",
            "frequency": "weekly",
            "csrf": csrf[1].decode(),
            "lang": "ru",
        }
        status, _, page = await site.post("preferences", data=form, headers=EN_BROWSER)
        assert status == 200 and _html_lang(page) == "ru"
        assert "Ваши настройки сохранены." in page.decode()
        with site.store() as store:
            assert store.preference_overrides()["ru@example.org"].languages == ("ru",)
        site.clock.now += timedelta(days=400)  # a digest's link does not expire
        assert (await site.get(f"preferences?token={token}"))[0] == 200
        # Forged or cut tokens still open nothing.
        for bad in (token[:-3], token.split(".")[0], "x." + token.split(".")[1]):
            assert (await site.get(f"preferences?token={bad}"))[0] == 400

    run_site(tmp_path, smtp, scenario)


def test_the_confirmation_link_opens_in_the_language_of_the_email(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        data = [
            ("csrf", await site.form_token("ru")),
            ("email", "new@example.com"),
            ("frequency", "daily"),
            ("languages", "ru"),
            ("lang", "ru"),
        ]
        assert (await site.post("subscribe", data=data))[0] == 200
        link = (await site.confirm_link("new@example.com")).removeprefix(site.url)
        status, _, page = await site.get(link, headers=EN_BROWSER)
        assert status == 200 and _html_lang(page) == "ru"
        token = re.search(rb'name="token" value="([^"]+)"', page)
        assert token and b'name="lang" value="ru"' in page
        form = {"token": token[1].decode(), "lang": "ru"}
        status, _, page = await site.post("confirm", data=form, headers=EN_BROWSER)
        assert status == 200 and _html_lang(page) == "ru"
        assert _link(page, "preferences").endswith("&lang=ru")

    run_site(tmp_path, smtp, scenario)


def test_a_front_page_item_in_another_language_says_so(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        service = site.handle.service
        assert service.language_note("ru", "en") == "(английский)"
        assert service.language_note("en", "ru") == "(Russian)"
        _, _, body = await site.get("?lang=ru")
        assert "(английский)" not in body.decode()  # the Russian feed's own statements
        pages = load_pages(site.config)
        sample = {
            "lang": "ru",
            "_": service.messages("ru").text,
            "site_title": "S",
            "site_url": "https://example.org/",
            "language_names": {"en": "English", "ru": "Русский"},
            "feeds": [],
            "entries_lang": "en",
            "csrf": "t",
            "errors": {},
            "values": {"email": "", "languages": ["ru"], "frequency": "daily"},
            "languages": ["en", "ru"],
        }
        entry = {"title": "T", "url": "u", "date": "d", "iso_date": "i", "paragraphs": []}
        html = pages.render(
            "web/home.html", **sample, entries=[{**entry, "language_note": "(английский)"}]
        )
        assert '<a href="u">T</a> <small lang="ru">(английский)</small></h3>' in html
        html = pages.render("web/home.html", **sample, entries=[{**entry, "language_note": ""}])
        assert "<small" not in html
        # Links in an excerpt are links on the start page too (escaped text, safe URLs only).
        front = FrontEntry("T", "2024-01-01T00:00:00+00:00", excerpt(LINKED, 50), "u")
        entry = service._entry(front, "en", "")
        html = pages.render("web/home.html", **sample, entries=[entry])
        assert (
            '<p><a href="https://example.org/a" rel="noopener noreferrer">a &amp; b</a> c</p>'
            in html
        )
        assert "javascript" not in html

    run_site(tmp_path, smtp, scenario)
