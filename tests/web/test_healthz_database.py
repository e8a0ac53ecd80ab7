"""``/healthz`` with ``[state] url``: the database is one of the checks.

The database is reached through a TCP relay on loopback, which the test closes: the
server "goes away" under a running web side, as when a database host fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from pg_coordination_helpers import fresh_database, with_port
from smtp_server import free_port
from statement_feeds.clock import system_clock
from statement_feeds.config import load_config
from statement_feeds.feeds.build import Publisher
from statement_feeds.web.app import start_http


class Relay:
    """Forwards TCP connections from a loopback port to ``target``; ``close`` cuts all."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def site_config(tmp_path: Path, make_site: Callable[..., Path], statement_md: Callable[..., str],
                state_url: str) -> Path:  # fmt: skip
    path = make_site(tmp_path / "site", statements={"a.en.md": statement_md(title="A")})
    http = free_port()
    path.write_text(
        path.read_text(encoding="utf-8")
        + f'\n[http]\nlisten = "127.0.0.1:{http}"\npublic_url = "http://127.0.0.1:{http}/"\n'
        + f'\n[state]\nurl = "{state_url}"\n',
        encoding="utf-8",
    )
    return path


async def get_health(session: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, object]]:
    async with session.get(base + "healthz") as response:
        return response.status, json.loads(await response.read())


def test_healthz_reports_the_database_and_fails_when_it_goes_away(
    tmp_path: Path,
    url: str,
    make_site: Callable[..., Path],
    statement_md: Callable[..., str],
) -> None:
    parts = urlsplit(url)

    async def scenario() -> None:
        relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
        await relay.start()
        config = load_config(
            site_config(tmp_path, make_site, statement_md, with_port(url, relay.port))
        )
        Publisher(config).build()
        handle = await start_http(config, system_clock)
        try:
            async with aiohttp.ClientSession() as session:
                status, body = await get_health(session, handle.url)
                assert status == 200, body
                assert body["checks"] == {"store": "ok", "feeds": "ok", "database": "ok"}
                await relay.close()  # the database host is gone
                status, body = await get_health(session, handle.url)
                assert status == 503
                checks = body["checks"]
                assert isinstance(checks, dict) and checks["database"] == "error"
                assert "127.0.0.1" not in json.dumps(body)  # the details go to the log only
        finally:
            with contextlib.suppress(Exception):
                await relay.close()
            await handle.close()

    asyncio.run(scenario())


def test_healthz_without_a_state_url_has_no_database_check(
    tmp_path: Path, make_site: Callable[..., Path], statement_md: Callable[..., str]
) -> None:
    path = site_config(tmp_path, make_site, statement_md, "")
    path.write_text(path.read_text(encoding="utf-8").replace('\n[state]\nurl = ""\n', ""))
    config = load_config(path)
    Publisher(config).build()

    async def scenario() -> None:
        handle = await start_http(config, system_clock)
        try:
            async with aiohttp.ClientSession() as session:
                status, body = await get_health(session, handle.url)
                assert status == 200 and body["checks"] == {"store": "ok", "feeds": "ok"}
        finally:
            await handle.close()

    asyncio.run(scenario())
