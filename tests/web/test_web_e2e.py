"""End to end in a real browser: Debian's /usr/bin/chromium driven by Playwright.

Open /, subscribe, read the confirmation mail at aiosmtpd, follow its link, confirm,
see the confirmation; then open a digest's List-Unsubscribe link and press the button.
Screenshots are kept under ``test-artifacts/`` (gitignored).

No browser is downloaded: ``playwright install`` is never run; the system Chromium is
used through ``executable_path``. Skipped with the reason when either is missing.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app import Site, run_site

from browser_helpers import ARGS, ARTIFACTS, CHROMIUM, needs_chromium, playwright_api
from smtp_server import RecordingServer
from statement_feeds.domain.tokens import unsubscribe_url

pytestmark = needs_chromium


@pytest.fixture
def smtp() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def test_subscribe_confirm_and_unsubscribe_in_chromium(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)

    async def scenario(site: Site) -> None:
        profile = tempfile.mkdtemp(prefix="sf-chromium-", dir=tmp_path)
        async with playwright_api.async_playwright() as driver:
            context = await driver.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=ARGS,
                locale="ru-RU",
                extra_http_headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"},
                viewport={"width": 390, "height": 844},  # a phone
            )
            try:
                await _flow(site, context)
            finally:
                await context.close()
        shutil.rmtree(profile, ignore_errors=True)

    run_site(tmp_path, smtp, scenario)


async def _flow(site: Site, context: object) -> None:
    page = await context.new_page()  # type: ignore[attr-defined]
    await page.goto(site.url)
    assert await page.get_attribute("html", "lang") == "ru"
    assert await page.locator("h1").inner_text() == "Социализм снизу"
    # The language switch works without JavaScript.
    await page.get_by_role("link", name="English", exact=True).click()
    assert await page.get_attribute("html", "lang") == "en"
    await page.screenshot(path=str(ARTIFACTS / "web-home.png"), full_page=True)

    await page.get_by_label("Email address").fill("browser@example.com")
    await page.get_by_label("Weekly").check()
    await page.get_by_role("button", name="Subscribe").click()
    assert "Check your inbox" in await page.locator("h1").inner_text()

    link = await site.confirm_link("browser@example.com")
    with site.store() as store:
        assert store.web_subscribers() == {}
    await page.goto(link)
    await page.get_by_role("button", name="Confirm").click()
    assert "Subscription confirmed" in await page.locator("h1").inner_text()
    await page.screenshot(path=str(ARTIFACTS / "web-confirmed.png"), full_page=True)
    with site.store() as store:
        subscriber = store.web_subscribers()["browser@example.com"]
        assert (subscriber.languages, subscriber.frequency) == (("en",), "weekly")

    # The List-Unsubscribe link of a digest (same format core.digest uses).
    token = site.signer.unsubscribe_token("browser@example.com")
    await page.goto(unsubscribe_url(site.config.http.public_url, token))
    with site.store() as store:
        assert not store.is_blocked("browser@example.com")  # opening it changed nothing
    await page.get_by_role("button", name=re.compile("Unsubscribe|Отписаться")).click()
    await page.wait_for_load_state()
    assert re.search("Unsubscribed|Подписка отменена", await page.locator("h1").inner_text())
    await page.screenshot(path=str(ARTIFACTS / "web-unsubscribed.png"), full_page=True)
    with site.store() as store:
        assert store.is_blocked("browser@example.com")
    await asyncio.sleep(0)
