"""The written pages in a real browser (Debian's /usr/bin/chromium through Playwright):
the Russian statements page, an Arabic statement (right to left) and a page on a phone-sized
screen, each kept as a screenshot under ``test-artifacts/`` (gitignored); none may need
horizontal scrolling.

No browser is downloaded: skipped with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from statement_feeds.config import load_config
from statement_feeds.feeds.build import Publisher

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright for Python is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing (apt-get install chromium); no browser is downloaded",
)


def _root_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_root_conftest", REPO / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _root_conftest()
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
