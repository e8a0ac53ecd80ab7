"""The written pages in a real browser (Debian's /usr/bin/chromium through Playwright):
the Russian statements page, an Arabic statement (right to left) and a page on a phone-sized
screen, each kept as a screenshot under ``test-artifacts/`` (gitignored); none may need
horizontal scrolling.

No browser is downloaded: skipped with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from browser_helpers import ARGS, ARTIFACTS, CHROMIUM, needs_chromium, playwright_api, root_conftest
from statement_feeds.config import load_config
from statement_feeds.feeds.build import Publisher

pytestmark = needs_chromium


_helpers = root_conftest()
LONG = " ".join(["солидарность"] * 60)
ARABIC = "نحن نقف متضامنين مع النضال في بيلاروسيا. " * 12


def test_pages_in_chromium_russian_list_arabic_statement_and_a_phone(tmp_path: Path) -> None:
    md = _helpers.statement_md
    statements = {
        "belarus.en.md": md(title="Belarus and the struggle", date="2020-08-26"),
        "belarus.ru.md": md(title="Беларусь и борьба", date="2020-08-26", body=LONG + "\n"),
        "belarus.ar.md": md(title="بيلاروسيا والنضال", date="2020-08-26", body=ARABIC + "\n"),
        "lebanon.ru.md": md(title="Ливан: восстание", date="2020-08-10"),
    }
    config = load_config(_helpers.write_site(tmp_path / "site", statements))
    Publisher(config, lambda: datetime(2030, 1, 1, tzinfo=UTC)).build()
    output = config.paths.output
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {
        "pages-ru-index.png": (output / "ru/index.html", {"width": 1024, "height": 768}),
        "pages-ar-statement.png": (
            output / "ar/belarus/index.html",
            {"width": 1024, "height": 768},
        ),
        "pages-ru-statement-phone.png": (
            output / "ru/belarus/index.html",
            {"width": 390, "height": 844},
        ),
    }

    async def main() -> dict[str, dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        async with playwright_api.async_playwright() as driver:
            browser = await driver.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=ARGS
            )
            try:
                for name, (path, viewport) in shots.items():
                    page = await browser.new_page(viewport=viewport)
                    await page.goto(path.as_uri())
                    seen[name] = await page.evaluate(
                        """() => ({
                            dir: getComputedStyle(document.querySelector('main')).direction,
                            lang: document.documentElement.lang,
                            overflow: document.documentElement.scrollWidth > innerWidth,
                            h1: document.querySelector('h1').textContent,
                            scripts: document.scripts.length,
                        })"""
                    )
                    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)
                    await page.close()
            finally:
                await browser.close()
        return seen

    seen = asyncio.run(main())
    assert seen["pages-ru-index.png"]["lang"] == "ru"
    assert seen["pages-ar-statement.png"]["dir"] == "rtl"
    assert seen["pages-ar-statement.png"]["h1"] == "بيلاروسيا والنضال"
    assert seen["pages-ru-statement-phone.png"]["dir"] == "ltr"
    for name, facts in seen.items():
        assert not facts["overflow"], f"{name}: wider than the screen"
        assert facts["scripts"] == 0
        assert (ARTIFACTS / name).stat().st_size > 1000
