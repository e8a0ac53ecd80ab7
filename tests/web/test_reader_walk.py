"""A Russian reader's whole walk in a real browser (Debian's /usr/bin/chromium, Playwright).

Front page in Russian → subscribe → the confirmation link from the real email (aiosmtpd) →
a digest whose "Corrected" section carries a statement corrected after it was mailed (the
digests are planned and sent by ``statement-feeds digest send``, as cron runs it) → the
preferences link of that digest (a Russian page with the reader's real settings) → the
digest's List-Unsubscribe link and its one-click POST (RFC 8058).

Every page is kept as a screenshot under ``test-artifacts/`` (gitignored), named
``walk-<step>.png``, with the README's two pictures, ``front-page-ru.png`` (the top of the
front page) and ``digest-ru.png`` (the digest's HTML part), to copy to ``docs/``.

No browser is downloaded: skipped with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner

from browser_helpers import ARGS, ARTIFACTS, CHROMIUM, needs_chromium, playwright_api, root_conftest
from smtp_server import RecordingServer, free_port
from statement_feeds.cli import cli
from statement_feeds.config import Config, load_config
from statement_feeds.feeds.build import Publisher
from statement_feeds.state.sqlite import SqliteStore
from statement_feeds.web.app import start_http

READER = "chitatel@example.com"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the reader subscribes then
MAILED = START + timedelta(days=1)  # the first digest
FIXED = MAILED + timedelta(hours=3)  # the statement is corrected
NEXT = MAILED + timedelta(days=1)  # the next digest

pytestmark = needs_chromium


_helpers = root_conftest()
md = _helpers.statement_md


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


OLD = {
    "belarus.ru.md": md(
        title='"Беларусь: солидарность с бастующими"',
        date="2026-02-20",
        body="Мы поддерживаем рабочих, которые бастуют против фальсификации выборов.\n\n"
        "Подробнее на [нашем сайте](https://example.org/ru/belarus/).\n",
    ),
    "belarus.en.md": md(title='"Belarus: solidarity with the strikers"', date="2026-02-20"),
    "lebanon.ru.md": md(
        title='"Ливан: восстание продолжается"',
        date="2026-02-10",
        body="Протесты охватили всю страну; мы на стороне восставших.\n",
    ),
    "chile.en.md": md(title='"Chile: a new constitution from below"', date="2026-01-28"),
}


def strike(updated: datetime | None = None) -> str:
    """The statement published after the reader joined; ``updated`` marks a correction."""
    figure = "40 000" if updated else "4 000"
    keys = {"updated": stamp(updated)} if updated else {}
    return md(
        title="Забастовка докеров",
        date=stamp(START + timedelta(hours=2)),
        body=f"Сегодня бастуют {figure} докеров. Мы с ними.\n\nВторой абзац заявления.\n",
        **keys,
    )


def make_site(root: Path, smtp_port: int, http_port: int) -> Config:
    path: Path = _helpers.write_site(root, OLD)
    text = path.read_text(encoding="utf-8").replace(
        'host = ""', f'host = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"'
    )
    text += (
        f'\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
        f'public_url = "http://127.0.0.1:{http_port}/news/"\n'
    )
    path.write_text(text, encoding="utf-8")
    return load_config(path)


class Clock:
    """The web side's now: tokens expire by it, and confirming records it as joining."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def digest_send(config: Config, at: datetime) -> None:
    """``statement-feeds digest send`` as cron runs it, with the clock pinned at ``at``."""
    env = {"STATEMENT_FEEDS_CONFIG": None, "STATEMENT_FEEDS_FAKE_NOW": at.isoformat()}
    args = ["--config", str(config.path), "digest", "send", "--frequency", "daily"]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output


async def wait_for_mails(smtp: RecordingServer, count: int) -> list[EmailMessage]:
    deadline = time.monotonic() + 10
    while len(smtp.messages_to(READER)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    received = smtp.messages_to(READER)
    assert len(received) == count, [m.parsed()["Subject"] for m in received]
    return [m.parsed() for m in received]


def part(message: EmailMessage, kind: str) -> str:
    body = message.get_body((kind,))
    assert body is not None, message
    content = body.get_content()
    assert isinstance(content, str)
    return content


def test_a_russian_reader_subscribes_gets_a_correction_and_unsubscribes(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for old in {*ARTIFACTS.glob("walk-*.png"), *ARTIFACTS.glob("*-ru.png")}:
        old.unlink()
    with RecordingServer() as smtp:
        config = make_site(tmp_path / "site", smtp.port, free_port())
        Publisher(config, lambda: START).build()
        asyncio.run(_walk(config, smtp, tmp_path))
    steps = ("front-ru", "check-inbox", "confirm", "confirmed", "digest-ru", "preferences")
    for step in (*steps, "unsubscribe"):
        assert (ARTIFACTS / f"walk-{step}.png").stat().st_size > 5000, step
    assert (ARTIFACTS / "walk-unsubscribed.png").exists()
    for picture in ("front-page-ru.png", "digest-ru.png"):  # docs/: small enough to commit
        assert 5000 < (ARTIFACTS / picture).stat().st_size < 80_000, picture


async def _walk(config: Config, smtp: RecordingServer, tmp_path: Path) -> None:
    clock = Clock()
    handle = await start_http(config, clock)
    try:
        async with playwright_api.async_playwright() as driver:
            browser = await driver.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=ARGS
            )
            context = await browser.new_context(
                locale="ru-RU",
                extra_http_headers={"Accept-Language": "ru-RU,ru;q=0.9"},
                viewport={"width": 760, "height": 900},
            )
            try:
                page = await context.new_page()
                await _subscribe(page, handle.url, smtp, config)
                digest = await _digests(config, smtp)
                await _digest_in_the_browser(page, digest, config)
                await _unsubscribe(page, digest, config)
            finally:
                await context.close()
                await browser.close()
    finally:
        await handle.close()


async def shot(page: Any, step: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"walk-{step}.png"), full_page=True)


async def _subscribe(page: Any, url: str, smtp: RecordingServer, config: Config) -> None:
    await page.goto(url)
    assert await page.get_attribute("html", "lang") == "ru"
    assert await page.locator("h1").inner_text() == "Социализм снизу"
    assert "Мы храним только ваш адрес" in await page.locator(".privacy").inner_text()
    statements = await page.locator("#latest ~ *").all_inner_texts()
    assert "Беларусь: солидарность с бастующими" in " ".join(statements)
    await shot(page, "front-ru")
    # The README's picture: the top of the page (form and the latest statement), small.
    top = {"x": 0, "y": 0, "width": 760, "height": 1050}
    await page.screenshot(path=str(ARTIFACTS / "front-page-ru.png"), clip=top, full_page=True)

    await page.get_by_label("Адрес электронной почты").fill(READER)
    assert await page.get_by_label("Русский").is_checked()  # from Accept-Language
    await page.get_by_label("Ежедневно").check()
    await page.get_by_role("button", name="Подписаться").click()
    assert "Проверьте" in await page.locator("h1").inner_text()
    await shot(page, "check-inbox")

    (mail,) = await wait_for_mails(smtp, 1)
    assert mail["Subject"] == "Подтвердите подписку на «Социализм снизу»"
    link = re.search(r"(http://\S+/confirm\?token=\S+)", part(mail, "plain"))
    assert link, part(mail, "plain")
    await page.goto(link.group(1))
    assert await page.get_attribute("html", "lang") == "ru"
    await shot(page, "confirm")
    await page.get_by_role("button", name="Подтвердить").click()
    assert await page.locator("h1").inner_text() == "Подписка подтверждена"
    await shot(page, "confirmed")
    with SqliteStore.open(config.paths.state) as store:
        reader = store.web_subscribers()[READER]
    assert (reader.languages, reader.frequency) == (("ru",), "daily")


async def _digests(config: Config, smtp: RecordingServer) -> EmailMessage:
    """Mail the new statement, correct it, mail again: return the digest with the correction."""
    statements = config.paths.statements
    (statements / "strike.ru.md").write_text(strike(), encoding="utf-8")
    await asyncio.to_thread(digest_send, config, MAILED)
    _, first = await wait_for_mails(smtp, 2)
    assert "Забастовка докеров" in part(first, "plain")
    assert "Исправлено" not in part(first, "plain")

    (statements / "strike.ru.md").write_text(strike(updated=FIXED), encoding="utf-8")
    await asyncio.to_thread(Publisher(config, lambda: FIXED).build)
    await asyncio.to_thread(digest_send, config, NEXT)
    _, _, corrected = await wait_for_mails(smtp, 3)
    assert corrected["Subject"] == "Социализм снизу: 1 исправленное заявление"
    plain = part(corrected, "plain")
    assert "40 000 докеров" in plain and "Исправлено 3 марта 2026" in plain, plain
    # Once per updated value: a third edition has nothing for the reader.
    await asyncio.to_thread(digest_send, config, NEXT + timedelta(days=1))
    await asyncio.sleep(0.3)
    assert len(smtp.messages_to(READER)) == 3
    return corrected


async def _digest_in_the_browser(page: Any, digest: EmailMessage, config: Config) -> None:
    """The HTML part as a mail program shows it; then its preferences link."""
    html = ARTIFACTS / "walk-digest-ru.html"
    html.write_text(part(digest, "html"), encoding="utf-8")
    await page.goto(html.as_uri())
    text = await page.locator("body").inner_text()
    assert "Исправлено 3 марта 2026" in text and "40 000 докеров" in text, text
    await shot(page, "digest-ru")
    await page.set_viewport_size({"width": 640, "height": 200})  # the README's: no margin
    await page.screenshot(path=str(ARTIFACTS / "digest-ru.png"), full_page=True)
    await page.set_viewport_size({"width": 760, "height": 900})

    await page.get_by_role("link", name="Изменить настройки").click()
    await page.wait_for_load_state()
    assert await page.get_attribute("html", "lang") == "ru"
    assert await page.locator("h1").inner_text() == "Настройки"
    assert READER in await page.locator("main").inner_text()
    assert await page.get_by_label("Русский").is_checked()
    assert not await page.get_by_label("English").is_checked()
    assert await page.get_by_label("Ежедневно").is_checked()
    await page.get_by_label("Еженедельно").check()
    await page.get_by_role("button", name="Сохранить").click()
    assert "Ваши настройки сохранены." in await page.locator("main").inner_text()
    await shot(page, "preferences")
    with SqliteStore.open(config.paths.state) as store:
        assert store.web_subscribers()[READER].frequency == "weekly"


async def _unsubscribe(page: Any, digest: EmailMessage, config: Config) -> None:
    """The digest's List-Unsubscribe URL: opening it changes nothing; its form is the
    RFC 8058 one-click POST a mail program sends, and so is a POST without the page."""
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.search(r"<(http://[^>]+)>", digest["List-Unsubscribe"])
    assert match, digest["List-Unsubscribe"]
    url = match.group(1)
    await page.goto(url)
    assert await page.get_attribute("html", "lang") == "ru"
    assert await page.locator("h1").inner_text() == "Отписаться"
    with SqliteStore.open(config.paths.state) as store:
        assert not store.is_blocked(READER)
    form = page.locator("form")
    assert await form.get_attribute("method") == "post"
    action = await form.evaluate("f => f.action")
    assert action in (url, url + "&lang=ru"), action  # the same token, to the same place
    await shot(page, "unsubscribe")
    await page.get_by_role("button", name="Отписаться").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "Подписка отменена"
    await shot(page, "unsubscribed")
    with SqliteStore.open(config.paths.state) as store:
        assert store.is_blocked(READER)
    # A mail program's POST (no cookies, no page) does the same and says so.
    one_click = {"List-Unsubscribe": "One-Click"}
    async with aiohttp.ClientSession() as session, session.post(url, data=one_click) as answer:
        assert answer.status == 200
        assert "Подписка отменена" in await answer.text()  # the reader's language
