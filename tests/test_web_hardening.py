"""The web side under hostile or unusual input (the hardening issue), against a real
server: aiohttp on loopback, real SQLite, real templates, real aiosmtpd.

Each test reproduces one reported defect and would fail without its fix.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_log import Events, capture_events
from smtp_server import RecordingServer
from statement_feeds.service import Publisher
from test_http import START, Site, run_site, statement_md


@pytest.fixture
def smtp() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


# -- item 1: a language from the request is one of the site's, or the default ----------


def test_confirm_with_huge_random_lang_falls_back_and_grows_no_cache(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        service = site.handle.service
        for _ in range(40):
            junk = secrets.token_hex(30_000)  # 60 KB, like the report
            status, _, body = await site.post("confirm", data={"token": "x", "lang": junk})
            page = body.decode()
            assert status == 400
            assert '<html lang="en">' in page and junk not in page
        for lang in ("ru", "RU"):
            _, _, body = await site.post("confirm", data={"token": "x", "lang": lang})
            assert '<html lang="ru">' in body.decode()  # a site language is still honoured
        assert service.translations.cached <= 8  # a few site languages, never one per request

    run_site(tmp_path, smtp, scenario)


# -- item 5: /healthz is for load balancers; planted files are not feeds --------------------


def test_healthz_body_names_no_paths_and_no_exception_texts(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        with capture_events() as events:
            await _healthz_with_a_broken_store(site, events)

    run_site(tmp_path, smtp, scenario)


async def _healthz_with_a_broken_store(site: Site, events: Events) -> None:
    state = site.config.paths.state
    for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
        (state / name).unlink(missing_ok=True)
    (state / "state.sqlite").write_bytes(b"this is not a database" * 100)
    status, _, body = await site.get("healthz")
    text = body.decode()
    assert status == 503 and '"ready": false' in text
    assert str(site.root) not in text and "/" not in text.replace('":', "")
    assert "not a database" not in text and "Error" not in text
    assert '"store": "error"' in text
    assert "not a database" in events.text()  # the operator still finds out why


def test_planted_symlink_and_fifo_in_feeds_are_not_languages(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        feeds = site.config.paths.output / "feeds"
        os.mkfifo(feeds / "zz.atom")
        (feeds / "xx.atom").symlink_to(feeds / "en.atom")
        (feeds / "yy.atom").symlink_to(site.config.paths.state / "secret.key")
        status, _, body = await site.get("", headers={"Accept-Language": "zz, xx, yy"})
        page = body.decode()
        assert status == 200 and '<html lang="en">' in page
        for planted in ("zz", "xx", "yy"):
            assert f'hreflang="{planted}"' not in page and f"?lang={planted}" not in page
        status, _, body = await site.get("metrics")
        text = body.decode()
        assert status == 200 and "statement_feeds_feeds 2" in text
        assert 'lang="zz"' not in text and 'lang="xx"' not in text and 'lang="yy"' not in text
        assert 'statement_feeds_statements{lang="en"} 2' in text

    run_site(tmp_path, smtp, scenario)


# -- item 11: the front page never re-parses feed XML ---------------------------------------


def test_a_huge_statement_does_not_break_the_front_page(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        # One paragraph over libxml2's 10,000,000-byte limit for a text node.
        body = "word " * 2_200_000
        folder = site.config.paths.statements
        (folder / "huge.en.md").write_text(
            statement_md(title="The huge one", date="2021-01-01", body=body), encoding="utf-8"
        )
        Publisher(site.config, lambda: START).build()
        for path in ("", "?lang=en", "metrics", "healthz"):
            status, _, page = await site.get(path)
            assert status == 200, (path, page[:500])
        _, _, page = await site.get("?lang=en")
        assert b"The huge one" in page

    run_site(tmp_path, smtp, scenario)


def test_hostile_feed_files_do_not_break_the_pages(tmp_path: Path, smtp: RecordingServer) -> None:
    async def scenario(site: Site) -> None:
        feed = site.config.paths.output / "feeds" / "en.atom"
        feed.write_bytes(b"<feed><entry><title>&xxe;" + b"A" * 11_000_000)  # not even XML
        status, _, page = await site.get("?lang=en")
        assert status == 200 and b"Belarus and the struggle" in page
        assert (await site.get("metrics"))[0] == 200

    run_site(tmp_path, smtp, scenario)


def test_an_unusable_index_shows_no_statements_and_is_not_ready(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        index = site.config.paths.state / "front-page.json"
        index.unlink()
        os.mkfifo(index)  # never opened: reading it would block the server
        status, _, page = await site.get("?lang=ru")
        assert status == 200 and b"Belarus" not in page and b'<html lang="en">' in page
        status, _, body = await site.get("healthz")
        assert status == 503 and b'"feeds": "error"' in body and b"front-page" not in body
        index.unlink()
        status, _, body = await site.get("healthz")
        assert status == 503 and b'"feeds": "not built"' in body

    run_site(tmp_path, smtp, scenario)
