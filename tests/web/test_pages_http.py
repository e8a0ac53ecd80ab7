"""The daemon's HTTP serving the pages `build` wrote: under the site's root, with the feeds'
ETag / 304 / gzip handling, and nothing outside ``<output>`` (real aiohttp server, raw
request lines for the traversal attempts)."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import aiohttp

from smtp_server import free_port
from statement_feeds.config import Config, load_config
from statement_feeds.feeds.build import Publisher
from statement_feeds.web.app import HttpHandle, start_http

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _root_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_root_conftest", REPO / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _root_conftest()

Scenario = Callable[[HttpHandle, Config, aiohttp.ClientSession], Awaitable[None]]


def serve(tmp_path: Path, scenario: Scenario, *, extra: str = "") -> None:
    port = free_port()
    statements = {
        "pension.en.md": _helpers.statement_md(title="Pension", date="2024-01-01"),
        "pension.ru.md": _helpers.statement_md(title="Пенсия", date="2024-01-01"),
    }
    path = _helpers.write_site(
        tmp_path / "site",
        statements,
        extra_toml=extra
        + f'\n[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}/news/"\n',
    )
    config = load_config(path)
    Publisher(config, lambda: NOW).build()

    async def main() -> None:
        handle = await start_http(config, lambda: NOW)
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                await scenario(handle, config, session)
        finally:
            await handle.close()

    asyncio.run(main())


def root_url(handle: HttpHandle) -> str:
    return f"http://127.0.0.1:{handle.port}/"


async def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """A request line sent byte for byte: no client-side normalisation of ``..``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1]), data


def test_the_full_statement_link_answers_with_validators_304_and_gzip(tmp_path: Path) -> None:
    async def scenario(handle: HttpHandle, config: Config, session: aiohttp.ClientSession) -> None:
        url = root_url(handle) + "en/pension/"
        on_disk = (config.paths.output / "en/pension/index.html").read_bytes()
        identity = {"Accept-Encoding": "identity"}
        async with session.get(url, headers=identity) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert await response.read() == on_disk
            etag = response.headers["ETag"]
            modified = response.headers["Last-Modified"]
        async with session.get(url, headers={**identity, "If-None-Match": etag}) as response:
            assert response.status == 304 and await response.read() == b""
        async with session.get(url, headers={**identity, "If-Modified-Since": modified}) as r:
            assert r.status == 304
        async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["ETag"] != etag
            assert gzip.decompress(await response.read()) == on_disk
        async with session.head(url, headers=identity) as response:
            assert response.status == 200
        for path, media in (("sitemap.xml", "application/xml"), ("robots.txt", "text/plain")):
            async with session.get(root_url(handle) + path, headers=identity) as response:
                assert response.status == 200, path
                assert response.headers["Content-Type"] == f"{media}; charset=utf-8"
                assert await response.read() == (config.paths.output / path).read_bytes()
        async with session.get(root_url(handle) + "ru/", headers=identity) as response:
            assert "Пенсия" in (await response.read()).decode()
        async with session.get(root_url(handle) + "en", allow_redirects=False) as response:
            assert response.status == 308 and response.headers["Location"] == "/en/"
        async with session.get(root_url(handle) + "en/nothing/", headers=identity) as response:
            assert response.status == 404
        # The web side keeps its own paths.
        async with session.get(root_url(handle) + "feeds/en.atom", headers=identity) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("application/atom")
        async with session.get(root_url(handle) + "news/", headers=identity) as response:
            assert b'name="csrf"' in await response.read()

    serve(tmp_path, scenario)


def test_a_rebuilt_page_is_served_new(tmp_path: Path) -> None:
    async def scenario(handle: HttpHandle, config: Config, session: aiohttp.ClientSession) -> None:
        url = root_url(handle) + "en/pension/"
        async with session.get(url) as response:
            assert b"Pension" in gzip.decompress(await response.read())
        (config.paths.statements / "pension.en.md").write_text(
            _helpers.statement_md(title="Pensions, corrected", date="2024-01-01"), "utf-8"
        )
        await asyncio.to_thread(Publisher(config, lambda: NOW).build)
        async with session.get(url) as response:
            assert b"Pensions, corrected" in gzip.decompress(await response.read())

    serve(tmp_path, scenario)


def test_nothing_outside_the_output_folder_is_served(tmp_path: Path) -> None:
    async def scenario(handle: HttpHandle, config: Config, session: aiohttp.ClientSession) -> None:
        output, state = config.paths.output, config.paths.state
        secret = (state / "secret.key").read_bytes().strip()
        (state / "index.html").write_bytes(b"outside")
        (output / "evil").mkdir()
        (output / "evil" / "index.html").symlink_to(state / "secret.key")
        (output / "linked").symlink_to(state, target_is_directory=True)
        (output / ".hidden").mkdir()
        (output / ".hidden" / "index.html").write_bytes(b"outside")
        (output / "en" / "notes.txt").write_bytes(b"outside")
        attempts = [
            "/../state/secret.key",
            "/../state/",
            "/%2e%2e/state/",
            "/%2E%2E%2Fstate%2F",
            "/..%2fstate/",
            "/en/../../state/",
            "/..\\state\\",
            "/en/pension/index.html%00/",
            "/evil/",  # a symlinked file
            "/linked/",  # a symlinked folder
            "/.hidden/",
            "/en/notes.txt",  # not a shape the build writes
            "/en/pension/index.html",
            "/sitemap.xml/",
            "//etc/",
            "/feeds/",
        ]
        for path in attempts:
            status, data = await raw_get(handle.port, path)
            assert status in (400, 404), (path, status)
            assert secret not in data and b"outside" not in data, path

    serve(tmp_path, scenario)


def test_no_pages_are_served_when_they_are_off(tmp_path: Path) -> None:
    async def scenario(handle: HttpHandle, config: Config, session: aiohttp.ClientSession) -> None:
        # Even a file left in the folder by hand: the pages are off.
        (config.paths.output / "en" / "pension").mkdir(parents=True)
        (config.paths.output / "en" / "pension" / "index.html").write_bytes(b"by hand")
        async with session.get(root_url(handle) + "en/pension/") as response:
            assert response.status == 404

    serve(tmp_path, scenario, extra="\n[pages]\nenabled = false\n")
