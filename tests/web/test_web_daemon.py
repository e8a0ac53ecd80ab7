"""The web side inside the daemon (in this process): after rebuilds and reloads.

The real ``Daemon.serve`` runs on this test's event loop, with its watcher, build
loop, edition runner and aiohttp server; signals go to this process, where the
daemon's loop handles them as in production.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from test_app import REPO, statement_md, write_site

from event_log import Events, capture_events
from smtp_server import free_port
from statement_feeds.clock import system_clock
from statement_feeds.config import load_config
from statement_feeds.daemon.run import Daemon, DaemonOptions, build_runner

STATEMENTS = {"belarus.en.md": statement_md(title="Belarus and the struggle", date="2020-08-26")}


class Running:
    def __init__(self, root: Path, daemon: Daemon, session: aiohttp.ClientSession, url: str):
        self.root = root
        self.daemon = daemon
        self.session = session
        self.url = url

    async def get(self, path: str = "") -> tuple[int, str]:
        async with self.session.get(self.url + path) as response:
            return response.status, await response.text()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def run_daemon_site(tmp_path: Path, scenario: Callable[[Running], Awaitable[None]]) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "src" / "statement_feeds" / "templates", templates)
    port = free_port()
    config_path = write_site(
        tmp_path / "site",
        STATEMENTS,
        templates=templates,
        extra_toml=f'\n[http]\nlisten = "127.0.0.1:{port}"\n'
        f'public_url = "http://127.0.0.1:{port}/"\n',
    )
    config = load_config(config_path)

    async def main() -> None:
        runner = build_runner(config, system_clock)
        options = DaemonOptions(rescan_interval=3600, debounce_ms=100)
        daemon = Daemon(config_path, config, system_clock, runner, options)
        serving = asyncio.create_task(daemon.serve())
        url = f"http://127.0.0.1:{port}/"
        try:
            async with aiohttp.ClientSession() as session:
                running = Running(tmp_path, daemon, session, url)

                async def up() -> bool:
                    try:
                        return (await running.get("healthz"))[0] == 200
                    except aiohttp.ClientError:
                        return False

                await until(up)
                await scenario(running)
        finally:
            daemon._on_stop_signal(signal.SIGTERM)
            await asyncio.wait_for(serving, 20)

    asyncio.run(main())


def test_front_page_follows_every_rebuild(tmp_path: Path) -> None:
    async def scenario(site: Running) -> None:
        assert "Belarus and the struggle" in (await site.get())[1]
        folder = site.daemon.config.paths.statements
        (folder / "later.en.md").write_text(
            statement_md(title="A later statement", date="2021-05-01"), encoding="utf-8"
        )

        async def shown() -> bool:
            return "A later statement" in (await site.get())[1]

        await until(shown)
        (folder / "later.ru.md").write_text(
            statement_md(title="Позднее заявление", date="2021-05-01"), encoding="utf-8"
        )

        async def russian() -> bool:
            return "Позднее заявление" in (await site.get("?lang=ru"))[1]

        await until(russian)
        (folder / "later.ru.md").unlink()

        async def gone() -> bool:
            return 'hreflang="ru"' not in (await site.get())[1]

        await until(gone)

    run_daemon_site(tmp_path, scenario)


def test_sighup_keeps_the_old_web_templates_when_a_new_one_is_broken(tmp_path: Path) -> None:
    async def scenario(site: Running) -> None:
        with capture_events() as events:
            await _broken_then_good_template(site, events)

    run_daemon_site(tmp_path, scenario)


async def _broken_then_good_template(site: Running, events: Events) -> None:
    home = site.root / "templates" / "web" / "home.html"
    good = home.read_text(encoding="utf-8")
    home.write_text(good.replace("{% block main %}", "{% block main %}{{ oops("), "utf-8")
    os.kill(os.getpid(), signal.SIGHUP)

    async def refused() -> bool:
        return "home.html" in events.text()

    await until(refused)
    assert "reload failed" in events.text() and "templates reloaded" not in events.text()
    status, page = await site.get()
    assert status == 200 and "Belarus and the struggle" in page
    # A template that compiles but fails when rendered is refused too.
    home.write_text(good.replace("{{ site_title }}", "{{ no_such_variable }}"), "utf-8")
    events.records.clear()
    os.kill(os.getpid(), signal.SIGHUP)
    await until(refused)
    assert (await site.get())[0] == 200
    # A good new template is taken.
    home.write_text(good.replace("<h1>", "<h1>Renewed: "), "utf-8")
    os.kill(os.getpid(), signal.SIGHUP)

    async def renewed() -> bool:
        return "Renewed: " in (await site.get())[1]

    await until(renewed)
