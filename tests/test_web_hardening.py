"""The web side under hostile or unusual input (the hardening issue), against a real
server: aiohttp on loopback, real SQLite, real templates, real aiosmtpd.

Each test reproduces one reported defect and would fail without its fix.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtp_server import RecordingServer
from test_http import Site, run_site


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
