"""The HTTP interface against a real server: aiohttp on a loopback port, real SQLite,
real aiosmtpd for the confirmation mails. No mocks of the code under test.

Each test runs one ``asyncio.run`` scenario: the server and the client share the loop.
The site is served under the path of its public_url (``/news/``) — also at the root.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import importlib.util
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, getaddresses
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from smtp_server import RecordingServer, free_port
from statement_feeds.config import Config, load_config
from statement_feeds.domain.problems import Problem
from statement_feeds.domain.subscribers import Subscriber
from statement_feeds.domain.tokens import Signer, unsubscribe_url
from statement_feeds.domain.web_subscribers import Preferences, merge_subscribers
from statement_feeds.feeds.build import Publisher
from statement_feeds.locales import po_sources
from statement_feeds.state.secrets import load_keys
from statement_feeds.state.sqlite import SqliteStore
from statement_feeds.web.app import HttpHandle, start_http
from statement_feeds.web.forms import choose_language, parse_accept_language
from statement_feeds.web.service import DEFAULT_LIMITS, RateLimits

REPO = Path(__file__).resolve().parents[2]


def _root_conftest() -> ModuleType:
    # By file: "import conftest" may find another folder's conftest on sys.path.
    spec = importlib.util.spec_from_file_location("_root_conftest", REPO / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_site_helpers = _root_conftest()
statement_md = _site_helpers.statement_md
write_site = _site_helpers.write_site
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

STATEMENTS = {
    "belarus.en.md": statement_md(title="Belarus and the struggle", date="2020-08-26"),
    "belarus.ru.md": statement_md(
        title="Беларусь и борьба", date="2020-08-26", body="Первый абзац.\n\nВторой.\n"
    ),
    "lebanon.en.md": statement_md(title="Lebanon <uprising>", date="2020-08-10"),
}


@dataclass
class Clock:
    """Now, movable by tests (tokens expire by this clock, not the wall clock)."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    root: Path
    config: Config
    handle: HttpHandle
    smtp: RecordingServer
    clock: Clock
    session: aiohttp.ClientSession
    signer: Signer = field(init=False)

    def __post_init__(self) -> None:
        with self.store() as store:
            id_key = store.subscriber_id_key()
        self.signer = Signer(load_keys(self.config.paths.state), id_key=id_key)

    @property
    def url(self) -> str:
        return self.handle.url  # http://127.0.0.1:<port>/news/

    def store(self) -> SqliteStore:
        return SqliteStore.open(self.config.paths.state)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Mapping[str, str], bytes]:
        # aiohttp asks for gzip by default; tests ask explicitly when they want it.
        kwargs["headers"] = {"Accept-Encoding": "identity", **kwargs.get("headers", {})}
        async with self.session.get(self.url + path, **kwargs) as response:
            return response.status, response.headers.copy(), await response.read()

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Mapping[str, str], bytes]:
        async with self.session.post(self.url + path, **kwargs) as response:
            return response.status, response.headers.copy(), await response.read()

    def unsubscribe_token(self, address: str) -> str:
        """The token a digest to ``address`` carries. Digests go only to addresses the
        store has recorded (planning records them first): so does this."""
        with self.store() as store:
            store.sync_subscribers([address], START)
        return self.signer.unsubscribe_token(address)

    async def form_token(self, lang: str = "") -> str:
        """Open the start page (getting the CSRF cookie) and return the form's token."""
        _, _, body = await self.get("" + (f"?lang={lang}" if lang else ""))
        match = re.search(rb'name="csrf" value="([^"]+)"', body)
        assert match, body
        return match.group(1).decode()

    async def subscribe(
        self, email: str, languages: tuple[str, ...] = ("en",), frequency: str = "daily"
    ) -> tuple[int, bytes]:
        data = [("csrf", await self.form_token()), ("email", email), ("frequency", frequency)]
        data += [("languages", lang) for lang in languages]
        status, _, body = await self.post("subscribe", data=data)
        return status, body

    async def mails_to(self, address: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        """The text bodies of the confirmation mails for ``address`` (waits for ``count``)."""
        deadline = time.monotonic() + timeout
        while len(self.smtp.messages_to(address)) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        out = []
        for received in self.smtp.messages_to(address):
            part = received.parsed().get_body(("plain",))
            assert part is not None
            out.append(part.get_content())
        return out

    async def confirm_link(self, address: str, index: int = 0) -> str:
        bodies = await self.mails_to(address, index + 1)
        match = re.search(r"(http://\S+/confirm\?token=\S+)", bodies[index])
        assert match, bodies[index]
        return match.group(1)


def make_config(
    root: Path, smtp_port: int, http_port: int, *, max_entries: int = 50, sender: str = ""
) -> Path:
    path: Path = write_site(root, STATEMENTS, max_entries=max_entries)
    text = path.read_text(encoding="utf-8").replace(
        'host = ""', f'host = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"'
    )
    if sender:
        text = text.replace('from = "Statements <statements@example.org>"', f'from = "{sender}"')
    text += (
        f'\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
        f'public_url = "http://127.0.0.1:{http_port}/news/"\n'
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def smtp() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


Scenario = Callable[[Site], Awaitable[None]]


def _flip(text: str) -> str:
    """``text`` with its first character changed: a first base64 character carries
    six bits of the value, so this is always another MAC (the last one may not be)."""
    return ("B" if text[0] == "A" else "A") + text[1:]


def run_site(
    tmp_path: Path,
    smtp: RecordingServer,
    scenario: Scenario,
    *,
    limits: RateLimits = DEFAULT_LIMITS,
    build: bool = True,
    max_entries: int = 50,
    sender: str = "",
) -> None:
    """Write and build a site, serve it, run ``scenario`` against it, stop everything."""
    port = free_port()
    site = make_config(tmp_path / "site", smtp.port, port, max_entries=max_entries, sender=sender)
    config = load_config(site)
    if build:
        Publisher(config, lambda: START).build()

    async def main() -> None:
        clock = Clock()
        handle = await start_http(config, clock, limits=limits)
        jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies for an IP address host
        try:
            async with aiohttp.ClientSession(cookie_jar=jar) as session:
                await scenario(Site(tmp_path, config, handle, smtp, clock, session))
        finally:
            await handle.close()

    asyncio.run(main())


async def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """A request line sent byte for byte: no client-side normalisation of ``..``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data


# -- feeds -------------------------------------------------------------------------------


def test_feed_headers_conditional_get_gzip_and_head(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        on_disk = (site.config.paths.output / "feeds" / "en.atom").read_bytes()
        status, headers, body = await site.get("feeds/en.atom", auto_decompress=False)
        assert status == 200
        assert body == on_disk
        assert headers["Content-Type"] == "application/atom+xml; charset=utf-8"
        etag, modified = headers["ETag"], headers["Last-Modified"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)  # strong: no W/
        assert "Accept-Encoding" in headers["Vary"]
        assert "Content-Encoding" not in headers

        status, again, body = await site.get("feeds/en.atom", headers={"If-None-Match": etag})
        assert (status, body) == (304, b"")
        assert again["ETag"] == etag
        status, _, _ = await site.get("feeds/en.atom", headers={"If-None-Match": '"other"'})
        assert status == 200
        status, _, _ = await site.get("feeds/en.atom", headers={"If-Modified-Since": modified})
        assert status == 304
        earlier = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
        status, _, _ = await site.get("feeds/en.atom", headers={"If-Modified-Since": earlier})
        assert status == 200
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        both = {"If-None-Match": '"other"', "If-Modified-Since": modified}
        assert (await site.get("feeds/en.atom", headers=both))[0] == 200

        gz = {"Accept-Encoding": "gzip"}
        status, zipped, body = await site.get("feeds/en.atom", headers=gz, auto_decompress=False)
        assert status == 200 and zipped["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == on_disk
        assert zipped["ETag"] != etag  # another representation, another strong tag
        conditional = {**gz, "If-None-Match": zipped["ETag"]}
        assert (await site.get("feeds/en.atom", headers=conditional))[0] == 304
        refused = {"Accept-Encoding": "gzip;q=0"}
        _, plain, _ = await site.get("feeds/en.atom", headers=refused, auto_decompress=False)
        assert "Content-Encoding" not in plain

        identity = {"Accept-Encoding": "identity"}
        async with site.session.head(site.url + "feeds/en.atom", headers=identity) as response:
            assert response.status == 200
            assert response.headers["ETag"] == etag
            assert await response.read() == b""

    run_site(tmp_path, smtp, scenario)


def test_changed_feed_gets_a_new_etag_and_archives_are_served(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        archive = site.config.paths.output / "feeds" / "archive" / "en"
        pages = sorted(p.name for p in archive.glob("*.atom"))
        assert pages, "max_entries=1 with two English statements makes an archive page"
        status, headers, body = await site.get(f"feeds/archive/en/{pages[0]}")
        assert status == 200 and body == (archive / pages[0]).read_bytes()
        assert headers["Content-Type"].startswith("application/atom+xml")

        _, first, _ = await site.get("feeds/ru.atom")
        feed = site.config.paths.output / "feeds" / "ru.atom"
        replacement = feed.with_suffix(".tmp")
        replacement.write_bytes(feed.read_bytes().replace(b"</feed>", b"<!-- x --></feed>"))
        os.replace(replacement, feed)  # as the publisher writes: a rename
        _, second, body = await site.get("feeds/ru.atom", headers={"If-None-Match": first["ETag"]})
        assert second["ETag"] != first["ETag"] and b"<!-- x --></feed>" in body

    run_site(tmp_path, smtp, scenario, max_entries=1)


def test_unknown_paths_are_404(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        for path in ("nope", "feeds/xx.atom", "feeds/en.xml", "feeds/", "feeds/archive/en/x.atom"):
            status, headers, _ = await site.get(path)
            assert status == 404, path
            assert headers["Content-Type"].startswith("text/html")
        # The routes are also served at the root, for proxies that strip the prefix.
        async with site.session.get(f"http://127.0.0.1:{site.handle.port}/feeds/en.atom") as r:
            assert r.status == 200

    run_site(tmp_path, smtp, scenario)


def test_no_path_traversal(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        secret = (site.config.paths.state / "secret.key").read_bytes().strip()
        feeds = site.config.paths.output / "feeds"
        (feeds / "evil.atom").symlink_to(site.config.paths.state / "secret.key")
        (feeds / "archive").mkdir(exist_ok=True)
        (feeds / "archive" / "xx").symlink_to(site.config.paths.state, target_is_directory=True)
        (site.config.paths.state / "1.atom").write_bytes(b"outside")
        port = site.handle.port
        attempts = [
            "/news/feeds/../../state/secret.key",
            "/news/feeds/%2e%2e/%2e%2e/state/secret.key",
            "/news/feeds/%2E%2E%2F%2E%2E%2Fstate%2Fsecret.key",
            "/news/feeds/..%2f..%2fstate/secret.key",
            "/news/feeds/archive/../../../state/secret.key",
            "/news/feeds/..\\..\\state\\secret.key",
            "/news/feeds/en.atom%00.txt",
            "/news/feeds/evil.atom",  # a symlink out of the folder
            "/news/feeds/archive/xx/1.atom",  # through a symlinked folder
            "/feeds/../../statement-feeds.toml",
        ]
        for path in attempts:
            status, data = await raw_get(port, path)
            assert status in (400, 404), (path, status)
            assert secret not in data and b"outside" not in data, path

    run_site(tmp_path, smtp, scenario)


# -- the start page ------------------------------------------------------------------------


def test_start_page_language_discovery_entries_and_form(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        status, headers, body = await site.get("", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
        page = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert '<html lang="ru">' in page
        assert "Социализм снизу" in page and "Беларусь и борьба" in page
        assert "Полный текст заявления" in page
        assert 'name="viewport"' in page and "<script" not in page
        for lang in ("en", "ru"):
            assert (
                f'<link rel="alternate" type="application/atom+xml" hreflang="{lang}" '
                f'href="https://example.org/feeds/{lang}.atom"'
            ) in page
        assert 'action="subscribe"' in page and 'name="csrf"' in page
        assert "sf_csrf=" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
        assert "Accept-Language" in headers["Vary"]

        _, _, body = await site.get("?lang=en", headers={"Accept-Language": "ru"})
        page = body.decode()
        assert '<html lang="en">' in page and "Full statement" in page
        assert "Lebanon &lt;uprising&gt;" in page  # escaped
        assert 'href="?lang=ru"' in page

        _, _, body = await site.get("", headers={"Accept-Language": "de, fr;q=0.5"})
        assert '<html lang="en">' in body.decode()  # no German feed: the default language

    run_site(tmp_path, smtp, scenario)


def test_healthz_and_metrics(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        status, headers, body = await site.get("healthz")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert b'"ready": true' in body and b'"store": "ok"' in body
        status, headers, body = await site.get("metrics")
        text = body.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'statement_feeds_statements{lang="en"} 2' in text
        assert 'statement_feeds_statements{lang="ru"} 1' in text
        assert "statement_feeds_feeds 2" in text
        assert 'statement_feeds_deliveries{state="sent"} 0' in text
        assert "statement_feeds_editions 0" in text
        assert "# TYPE statement_feeds_last_build_timestamp_seconds gauge" in text
        for line in text.splitlines():
            assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [0-9.]+", line)

    run_site(tmp_path, smtp, scenario)


def test_healthz_not_ready_before_a_build(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        status, _, body = await site.get("healthz")
        assert status == 503 and b'"live": true' in body and b'"ready": false' in body

    run_site(tmp_path, smtp, scenario, build=False)


# -- sign-up ---------------------------------------------------------------------------------


def test_double_opt_in(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        status, body = await site.subscribe("New.Reader@example.com", ("ru", "en"), "weekly")
        assert status == 200 and b"confirmation link" in body
        link = await site.confirm_link("New.Reader@example.com")
        mail = smtp.messages_to("New.Reader@example.com")[0].parsed()
        assert mail["From"] == "Statements <statements@example.org>"
        assert "Confirm your subscription" in mail["Subject"]
        with site.store() as store:
            assert store.web_subscribers() == {}  # not before the link is followed

        token_path = link.removeprefix(site.url)
        status, _, body = await site.get(token_path)
        assert status == 200 and b'method="post" action="confirm"' in body
        with site.store() as store:
            assert store.web_subscribers() == {}  # GET shows a button, nothing more

        site.clock.now = START + timedelta(hours=3)
        token = parse_qs(urlsplit(link).query)["token"][0]
        status, _, body = await site.post("confirm", data={"token": token})
        assert status == 200 and b"subscription is active" in body
        assert b"preferences?token=" in body
        with site.store() as store:
            web = store.web_subscribers()
            assert list(web) == ["new.reader@example.com"]
            assert web["new.reader@example.com"].languages == ("ru", "en")
            assert web["new.reader@example.com"].frequency == "weekly"
            assert store.joined_at("new.reader@example.com") == START + timedelta(hours=3)

        status, _, _ = await site.post("confirm", data={"token": token})
        assert status == 400  # single use

    run_site(tmp_path, smtp, scenario)


def test_confirmation_is_localised(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        data = [
            ("csrf", await site.form_token("ru")),
            ("email", "ivan@example.com"),
            ("languages", "ru"),
            ("frequency", "daily"),
            ("lang", "ru"),
        ]
        status, _, body = await site.post("subscribe", data=data)
        assert status == 200 and "Проверьте почту" in body.decode()
        text = (await site.mails_to("ivan@example.com"))[0]
        assert "Социализм снизу" in text and "откройте ссылку" in text
        mail = smtp.messages_to("ivan@example.com")[0].parsed()
        assert "Подтвердите подписку" in mail["Subject"]

    run_site(tmp_path, smtp, scenario)


def test_response_does_not_reveal_whether_an_address_is_subscribed(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        await site.subscribe("known@example.com")
        link = await site.confirm_link("known@example.com")
        token = parse_qs(urlsplit(link).query)["token"][0]
        assert (await site.post("confirm", data={"token": token}))[0] == 200
        known = await site.subscribe("known@example.com")
        unknown = await site.subscribe("stranger@example.com")
        assert known == unknown

    run_site(tmp_path, smtp, scenario)


def test_invalid_form_is_shown_again_with_errors(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        status, body = await site.subscribe("not-an-address", ("xx",), "hourly")
        page = body.decode()
        assert status == 400 and 'aria-invalid="true"' in page
        assert "valid email address" in page and "at least one language" in page
        assert 'value="not-an-address"' in page
        assert smtp.messages == []

    run_site(tmp_path, smtp, scenario)


@pytest.mark.parametrize(
    "address",
    [
        "=?utf-8?q?attacker=40evil.org=2C_anna?=@example.org",  # To: attacker@evil.org, anna@…
        "=?utf-8?q?a=0D=0ABcc=3A_x=40evil.org?=@example.org",  # was a 500 and a traceback
        "=?utf-8?b?YXR0YWNrZXJAZXZpbC5vcmc=?=@example.org",
        "пётр@example.org",  # would need SMTPUTF8
    ],
)
def test_an_address_a_header_parser_would_decode_is_refused_at_the_form(
    tmp_path: Path, smtp: RecordingServer, address: str
) -> None:
    async def scenario(site: Site) -> None:
        status, body = await site.subscribe(address)
        assert status == 400 and 'aria-invalid="true"' in body.decode()
        if not address.isascii():  # says why, and what to do
            assert "Latin letters" in body.decode() and "another address" in body.decode()
        await asyncio.sleep(0.2)  # a confirmation would be on its way by now
        assert smtp.messages == []

    run_site(tmp_path, smtp, scenario)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything our records and asyncio's say: messages, fields, tracebacks.

    (The test SMTP server's own log, ``mail.log``, does show addresses.)
    """
    gc.collect()  # asyncio reports a task exception nobody retrieved when the task dies
    return "\n".join(
        f"{r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text or ''} {r.exc_info or ''}"
        for r in caplog.records
        if r.name.startswith("statement_feeds") or r.name == "asyncio"
    )


def test_an_idn_address_is_confirmed_at_its_a_label_and_never_logged(
    tmp_path: Path, smtp: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a_label = "Reader@xn--bcher-kva.de"

    async def scenario(site: Site) -> None:
        status, body = await site.subscribe("Reader@Bücher.de")
        assert status == 200 and b"confirmation link" in body
        link = await site.confirm_link(a_label)
        mail = smtp.messages_to(a_label)[0].parsed()
        assert getaddresses(mail.get_all("To") or []) == [("", a_label)]
        token = parse_qs(urlsplit(link).query)["token"][0]
        assert (await site.post("confirm", data={"token": token}))[0] == 200
        with site.store() as store:
            assert list(store.web_subscribers()) == ["reader@xn--bcher-kva.de"]
        # The same reader typing the A-label is the same subscriber (one rate limit too).
        await site.subscribe("reader@XN--BCHER-KVA.DE")
        await site.mails_to("reader@XN--BCHER-KVA.DE")
        with site.store() as store:
            assert store.joined_at("reader@bücher.de") == START

    run_site(tmp_path, smtp, scenario)
    logged = _logged(caplog)
    assert "web.confirmation_sent" in logged
    assert "cher" not in logged.lower() and "never retrieved" not in logged


def test_a_confirmation_the_server_refuses_is_logged_without_the_address(
    tmp_path: Path, smtp: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    smtp.rcpt_replies["Gone@example.com"] = "550 5.1.1 <Gone@example.com>: user unknown"

    async def scenario(site: Site) -> None:
        assert (await site.subscribe("Gone@example.com"))[0] == 200
        for _ in range(100):  # the mail goes out in the background
            if "web.confirmation_failed" in _logged(caplog):
                break
            await asyncio.sleep(0.02)

    run_site(tmp_path, smtp, scenario)
    logged = _logged(caplog)
    assert "web.confirmation_failed" in logged and "550" in logged
    assert "gone@" not in logged.lower() and "never retrieved" not in logged


def test_a_confirmation_that_fails_unexpectedly_is_logged_without_a_traceback(
    tmp_path: Path, smtp: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The mailer cannot quote a non-ASCII sender: not a delivery error, a bug-like one.
    # The background task must still end quietly, naming neither address.
    caplog.set_level(logging.DEBUG)

    async def scenario(site: Site) -> None:
        assert (await site.subscribe("Victim@example.com"))[0] == 200
        for _ in range(100):
            if "web.confirmation_failed" in _logged(caplog):
                break
            await asyncio.sleep(0.02)

    run_site(tmp_path, smtp, scenario, sender="Statements <stätements@example.org>")
    logged = _logged(caplog)
    assert "web.confirmation_failed" in logged and "UnicodeEncodeError" in logged
    assert "victim@" not in logged.lower() and "never retrieved" not in logged
    assert "Traceback" not in logged and smtp.messages == []


@pytest.mark.parametrize(
    "address", ["O'Neil+tag=x@example.com", "a.b-c_d~e!f#g$h%i&j*k/l?m^n`o{p|q}r@example.com"]
)
def test_the_confirmation_names_exactly_the_address_signed_up(
    tmp_path: Path, smtp: RecordingServer, address: str
) -> None:
    async def scenario(site: Site) -> None:
        assert (await site.subscribe(address))[0] == 200
        await site.mails_to(address)
        raw = smtp.messages_to(address)[0]
        assert raw.recipients == (address,)
        mail = raw.parsed()
        assert getaddresses(mail.get_all("To") or []) == [("", address)]
        assert "Cc" not in mail and "Bcc" not in mail and not mail.defects

    run_site(tmp_path, smtp, scenario)


def test_csrf_is_required(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        form = {"email": "a@example.com", "languages": "en", "frequency": "daily"}
        # No cookie at all (a cross-site POST from a fresh browser).
        async with (
            aiohttp.ClientSession() as stranger,
            stranger.post(site.url + "subscribe", data=form) as response,
        ):
            assert response.status == 403
        # Cookie, but no token / a forged token / a token minted for another cookie.
        await site.form_token()
        for token in ("", "forged.123.abc", site.signer.sign("csrf", "x" * 32, 2**40)):
            status, _, _ = await site.post("subscribe", data={**form, "csrf": token})
            assert status == 403, token
        # A token for another purpose does not pass as a CSRF token.
        cookie = next(c.value for c in site.session.cookie_jar if c.key == "sf_csrf")
        wrong = site.signer.sign("preferences", cookie, 2**40)
        assert (await site.post("subscribe", data={**form, "csrf": wrong}))[0] == 403
        await asyncio.sleep(0.2)
        assert smtp.messages == []

    run_site(tmp_path, smtp, scenario)


def test_rate_limit_per_address(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        answers = {await site.subscribe("Victim@example.com") for _ in range(5)}
        assert len(answers) == 1  # the same page every time: nothing revealed
        await site.mails_to("Victim@example.com", 3)
        await asyncio.sleep(0.3)
        assert len(smtp.messages_to("Victim@example.com")) == 2  # limit 2 per day
        site.clock.now = START + timedelta(hours=25)  # the window slides on
        await site.subscribe("victim@example.com")
        assert len(await site.mails_to("victim@example.com", 1)) == 1

    limits = RateLimits(per_address=2, per_client=50)
    run_site(tmp_path, smtp, scenario, limits=limits)


def test_rate_limit_per_client(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        statuses = [(await site.subscribe(f"p{i}@example.com"))[0] for i in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        site.clock.now = START + timedelta(hours=2)
        assert (await site.subscribe("later@example.com"))[0] == 200

    run_site(tmp_path, smtp, scenario, limits=RateLimits(per_client=3))


def test_confirmation_token_forgery_and_expiry(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        await site.subscribe("eve@example.com")
        token = parse_qs(urlsplit(await site.confirm_link("eve@example.com")).query)["token"][0]
        payload, expiry, mac = token.split(".")
        forged = [
            f"{payload}.{expiry}.{_flip(mac)}",  # wrong MAC
            f"{payload}.{int(expiry, 16) + 3600:x}.{mac}",  # longer life
            token[:-5],  # truncated
            site.signer.sign("preferences", "eve@example.com", 2**40),  # other purpose
            "",
        ]
        for bad in forged:
            assert (await site.get(f"confirm?token={bad}"))[0] == 400, bad
            assert (await site.post("confirm", data={"token": bad}))[0] == 400, bad
        site.clock.now = START + timedelta(hours=49)
        assert (await site.post("confirm", data={"token": token}))[0] == 400  # expired
        with site.store() as store:
            assert store.web_subscribers() == {}

    run_site(tmp_path, smtp, scenario)


# -- unsubscribe ---------------------------------------------------------------------------


def test_unsubscribe_get_never_unsubscribes_post_does_idempotently(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        token = site.unsubscribe_token("reader@example.com")
        # The link a digest carries (core.tokens.unsubscribe_url) is served here.
        link = unsubscribe_url(site.config.http.public_url, token)
        assert link == f"{site.url}unsubscribe?token={token}"
        for _ in range(3):
            status, headers, body = await site.get(f"unsubscribe?token={token}")
            assert status == 200 and b'name="List-Unsubscribe" value="One-Click"' in body
            assert b"reader@example.com" in body
            assert headers["Referrer-Policy"] == "no-referrer"
        with site.store() as store:
            assert not store.is_blocked("reader@example.com")

        one_click = {"List-Unsubscribe": "One-Click"}
        for _ in range(2):  # idempotent
            status, _, body = await site.post(f"unsubscribe?token={token}", data=one_click)
            assert status == 200 and b"unsubscribed" in body
        with site.store() as store:
            assert store.is_blocked("reader@example.com")
        # Without the RFC 8058 body nothing is claimed.
        other = site.unsubscribe_token("other@example.com")
        assert (await site.post(f"unsubscribe?token={other}", data={}))[0] == 400

    run_site(tmp_path, smtp, scenario)


def test_forged_truncated_or_cross_subscriber_unsubscribe_tokens_do_nothing(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        alice = site.unsubscribe_token("alice@example.com")
        bob = site.unsubscribe_token("bob@example.com")
        cross = alice.split(".")[0] + "." + bob.split(".")[1]  # alice's id, bob's MAC
        with site.store() as store:
            id_key = store.subscriber_id_key()
        other_key = Signer([b"k" * 32], id_key=id_key).unsubscribe_token("alice@example.com")
        one_click = {"List-Unsubscribe": "One-Click"}
        for bad in (cross, alice[:-3], alice.split(".")[0], other_key, "%00", ""):
            assert (await site.get(f"unsubscribe?token={bad}"))[0] == 400
            assert (await site.post(f"unsubscribe?token={bad}", data=one_click))[0] == 400
        with site.store() as store:
            assert not store.is_blocked("alice@example.com")
            assert not store.is_blocked("bob@example.com")

    run_site(tmp_path, smtp, scenario)


# -- preferences ---------------------------------------------------------------------------


def test_preferences_for_web_and_csv_subscribers(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        await site.subscribe("web@example.com", ("en",), "daily")
        token = parse_qs(urlsplit(await site.confirm_link("web@example.com")).query)["token"][0]
        _, _, body = await site.post("confirm", data={"token": token})
        match = re.search(rb'href="([^"]*preferences\?token=[^"]+)"', body)
        assert match
        prefs_path = match.group(1).decode().replace("&amp;", "&").removeprefix(site.url)
        status, _, page = await site.get(prefs_path)
        assert status == 200 and b'value="en" checked' in page
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert csrf
        prefs_token = parse_qs(urlsplit(prefs_path).query)["token"][0]
        form = [("token", prefs_token), ("languages", "ru"), ("languages", "en")]
        form += [("frequency", "weekly"), ("lang", "en")]  # the form's hidden field
        assert (await site.post("preferences", data=form))[0] == 403  # no CSRF token
        status, _, page = await site.post("preferences", data=[*form, ("csrf", csrf[1].decode())])
        assert status == 200 and b"preferences are saved" in page
        with site.store() as store:
            assert store.web_subscribers()["web@example.com"].languages == ("ru", "en")
            assert store.preference_overrides() == {}

        # A CSV subscriber (reached from a digest's unsubscribe page): an override.
        unsub = site.unsubscribe_token("csv@example.com")
        _, _, page = await site.get(f"unsubscribe?token={unsub}")
        link = re.search(rb'href="([^"]*preferences\?token=[^"]+)"', page)
        assert link
        path = link[1].decode().removeprefix(site.url)
        _, _, page = await site.get(path)
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert csrf
        data = {
            "token": parse_qs(urlsplit(path).query)["token"][0],
            "languages": "ru",
            "frequency": "weekly",
            "csrf": csrf[1].decode(),
        }
        assert (await site.post("preferences", data=data))[0] == 200
        with site.store() as store:
            assert store.preference_overrides() == {
                "csv@example.com": Preferences(("ru",), "weekly")
            }
        site.clock.now = START + timedelta(days=31)
        assert (await site.get(path))[0] == 400  # preference links expire

    run_site(tmp_path, smtp, scenario)


# -- pure helpers ------------------------------------------------------------------------------


def test_accept_language_negotiation() -> None:
    assert parse_accept_language("da, en-gb;q=0.8, en;q=0.7, *;q=0.1") == [
        "da",
        "en-gb",
        "en",
        "*",
    ]
    assert parse_accept_language("fr;q=0, de") == ["de"]
    assert choose_language(None, "ru-RU,ru;q=0.9,en;q=0.8", ["en", "ru"], "en") == "ru"
    assert choose_language("ru", "en", ["en", "ru"], "en") == "ru"
    assert choose_language("xx", "de-AT", ["de", "en"], "en") == "de"
    assert choose_language(None, "pt", ["en", "pt-BR"], "en") == "pt-BR"
    assert choose_language(None, "q=;;,", ["en"], "en") == "en"


def test_merge_web_subscribers_into_the_csv_list() -> None:
    csv: list[Subscriber | Problem] = [
        Subscriber("a@example.com", "A", ("en",), "daily", "s.csv", 2),
        Problem("s.csv", "bad row", "fix", 3),
        Subscriber("B@example.com", "B", ("en",), "daily", "s.csv", 4),
        Subscriber("c@example.com", "C", ("en",), "daily", "s.csv", 5),
    ]
    web = {
        "b@example.com": Subscriber("b@example.com", "", ("ru",), "weekly", "web"),
        "d@example.com": Subscriber("d@example.com", "", ("en",), "weekly", "web"),
    }
    overrides = {"c@example.com": Preferences(("ru", "en"), "weekly")}
    merged = list(merge_subscribers(csv, web, overrides))
    assert merged[0] == csv[0] and merged[1] == csv[1]
    assert merged[2] == web["b@example.com"]  # the subscriber's own choice wins
    c = merged[3]
    assert isinstance(c, Subscriber) and (c.languages, c.frequency) == (("ru", "en"), "weekly")
    assert merged[4] == web["d@example.com"] and len(merged) == 5


def test_every_page_string_is_translated() -> None:
    sources = [
        *(REPO / "src" / "statement_feeds" / "templates" / "web").glob("*.html"),
        REPO / "src" / "statement_feeds" / "templates" / "confirm.txt",
    ]
    web = REPO / "src" / "statement_feeds" / "web"  # the flows' modules
    code = "\n".join(path.read_text(encoding="utf-8") for path in sorted(web.glob("*.py")))
    msgids = {m for path in sources for m in re.findall(r"_\('([^']+)'", path.read_text())}
    msgids |= set(re.findall(r'notice\(\s*lang, \d+, "([^"]+)"', code))
    assert len(msgids) > 30
    for lang, source in po_sources().items():
        text = source.decode("utf-8")
        missing = [m for m in msgids if f'msgid "{m}"' not in text]
        assert not missing, (lang, missing)


def test_subscribers_list_and_export_show_csv_and_web(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from statement_feeds.cli import cli

    config_path = write_site(tmp_path, STATEMENTS)
    (tmp_path / "subscribers" / "list.csv").write_text(
        "email,name,languages,frequency\ncsv@example.com,Csv,en,daily\n", encoding="utf-8"
    )
    config = load_config(config_path)
    with SqliteStore.open(config.paths.state) as store:
        prefs = Preferences(("ru",), "weekly")
        store.add_confirmation("id1", "Web@example.com", prefs, START, START + timedelta(days=1))
        assert store.confirm_subscription("id1", START) is not None
        store.set_preferences("csv@example.com", Preferences(("ru", "en"), "weekly"), START)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--config", str(config_path), "subscribers", "list"])
    assert listed.exit_code == 0, listed.output
    assert "csv@example.com" in listed.output and "Web@example.com" in listed.output
    exported = runner.invoke(cli, ["--config", str(config_path), "subscribers", "export"])
    assert exported.exit_code == 0
    lines = exported.stdout.splitlines()
    assert lines[0] == "email,name,languages,frequency,source,state"
    assert "csv@example.com,Csv,ru en,weekly,list.csv,new" in lines
    assert "Web@example.com,,ru,weekly,web,active" in lines


def test_metrics_can_require_a_token(
    tmp_path: Path, smtp: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEMENT_FEEDS_METRICS_TOKEN", "s3cret")

    async def scenario(site: Site) -> None:
        status, headers, _ = await site.get("metrics")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        status, _, _ = await site.get("metrics", headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _, body = await site.get("metrics", headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and b"statement_feeds_feeds" in body

    run_site(tmp_path, smtp, scenario)
