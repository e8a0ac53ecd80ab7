"""The web side under hostile or unusual input (the hardening issue), against a real
server: aiohttp on loopback, real SQLite, real templates, real aiosmtpd.

Each test reproduces one reported defect and would fail without its fix.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import os
import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from test_app import START, Site, run_site, statement_md

from event_log import Events, capture_events
from smtp_server import RecordingServer
from statement_feeds.digests.service import Digests
from statement_feeds.feeds.build import Publisher


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
        # Above the size limit (feeds.max_statement_bytes) an admin may raise.
        feeds = dataclasses.replace(site.config.feeds, max_statement_bytes=20_000_000)
        Publisher(dataclasses.replace(site.config, feeds=feeds), lambda: START).build()
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


# -- item 13: the preferences page shows a CSV subscriber's real settings --------------------


def _checked(page: str) -> tuple[list[str], str]:
    """What a browser would submit: checked languages in page order, the checked frequency."""
    languages = re.findall(r'name="languages" value="([^"]+)" checked', page)
    frequency = re.findall(r'name="frequency" value="([^"]+)" checked', page)
    assert len(frequency) == 1, page
    return languages, frequency[0]


def test_preferences_page_shows_a_csv_subscribers_settings_and_save_keeps_them(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        (site.config.paths.subscribers / "list.csv").write_text(
            'email,name,languages,frequency\nBoris@example.org,Boris,"ru,en", weekly\n',
            encoding="utf-8",
        )
        token = await unsubscribe_token(site, "boris@example.org")
        _, _, page = await site.get(f"unsubscribe?token={token}")
        link = re.search(r'href="([^"]*preferences\?token=[^"]+)"', page.decode())
        assert link
        path = link[1].replace("&amp;", "&").removeprefix(site.url)
        status, _, body = await site.get(path)
        page = body.decode()
        assert status == 200
        assert _checked(page) == (["ru", "en"], "weekly")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        languages, frequency = _checked(page)
        form = [("token", parse_qs(urlsplit(path).query)["token"][0]), ("csrf", csrf[1])]
        form += [("languages", lang) for lang in languages] + [("frequency", frequency)]
        status, _, body = await site.post("preferences", data=form)
        assert status == 200 and _checked(body.decode()) == (["ru", "en"], "weekly")
        with site.store() as store:
            prefs = store.preferences_for("boris@example.org")
            assert prefs is not None and (prefs.languages, prefs.frequency) == (
                ("ru", "en"),
                "weekly",
            )

    run_site(tmp_path, smtp, scenario)


def test_a_csv_subscribers_language_without_a_feed_is_shown_and_kept(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        (site.config.paths.subscribers / "list.csv").write_text(
            "email,name,languages,frequency\nhans@example.org,Hans,de en,daily\n",
            encoding="utf-8",
        )
        token = await unsubscribe_token(site, "hans@example.org")
        _, _, page = await site.get(f"unsubscribe?token={token}")
        link = re.search(r'href="[^"]*(preferences\?token=[^"]+)"', page.decode())
        assert link
        _, _, body = await site.get(link[1])
        page = body.decode()
        assert _checked(page) == (["de", "en"], "daily")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        form = [("token", parse_qs(urlsplit(link[1]).query)["token"][0]), ("csrf", csrf[1])]
        status, _, _ = await site.post(
            "preferences", data=[*form, ("languages", "xx"), ("frequency", "daily")]
        )
        assert status == 400  # not offered: refused, nothing stored
        with site.store() as store:
            assert store.preference_overrides() == {}
        data = [*form, ("languages", "de"), ("languages", "ru"), ("frequency", "weekly")]
        assert (await site.post("preferences", data=data))[0] == 200
        with site.store() as store:
            prefs = store.preferences_for("hans@example.org")
            assert prefs is not None and prefs.languages == ("de", "ru")

    run_site(tmp_path, smtp, scenario)


# -- item 14: tokens in links do not reveal the address ------------------------------------


def _b64_fragments(address: str) -> list[str]:
    raw = address.encode()
    return [base64.urlsafe_b64encode(raw[i:]).decode().rstrip("=")[:12] for i in range(3)]


async def unsubscribe_token(site: Site, address: str) -> str:
    """The token of ``address``'s List-Unsubscribe link in a real digest it was sent."""
    digests = Digests(site.config, site.clock)
    start = site.clock.now
    digests.subscribers_changed()  # joins now
    folder = site.config.paths.statements
    day = (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = f"news-{secrets.token_hex(4)}"
    for lang in ("en", "ru"):
        (folder / f"{name}.{lang}.md").write_text(
            statement_md(title=f"News {name} {lang}", date=day), encoding="utf-8"
        )
    site.clock.now = start + timedelta(hours=2)
    outcome = await digests.send(None)  # everyone, whatever their frequency
    assert outcome.summary is not None and outcome.summary.sent >= 1, outcome
    mails = [m for m in site.smtp.messages if address.lower() in (r.lower() for r in m.recipients)]
    assert mails, [m.recipients for m in site.smtp.messages]
    header = str(mails[-1].parsed()["List-Unsubscribe"])
    https = re.findall(r"<(https?://[^>]+)>", header)[0]
    return unquote(https.rsplit("token=", 1)[1])


def test_digest_unsubscribe_links_do_not_reveal_the_address(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        (site.config.paths.subscribers / "list.csv").write_text(
            "email,name,languages,frequency\nboris@example.org,Boris,en,daily\n",
            encoding="utf-8",
        )
        token = await unsubscribe_token(site, "boris@example.org")
        mail = smtp.messages_to("boris@example.org")[-1].parsed()
        header = str(mail["List-Unsubscribe"])
        for fragment in _b64_fragments("boris@example.org"):
            assert fragment not in header, (fragment, header)
        assert "boris" not in header.lower()
        # The link works: the page names the address (to its holder), the POST unsubscribes.
        status, _, page = await site.get(f"unsubscribe?token={token}")
        assert status == 200 and b"boris@example.org" in page
        prefs = re.search(r"preferences\?token=([^\"&]+)", page.decode())
        assert prefs and not any(f in prefs[1] for f in _b64_fragments("boris@example.org"))
        one_click = {"List-Unsubscribe": "One-Click"}
        status, _, _ = await site.post(f"unsubscribe?token={token}", data=one_click)
        assert status == 200
        with site.store() as store:
            assert store.is_blocked("boris@example.org")

    run_site(tmp_path, smtp, scenario)


def _legacy_unsubscribe_token(site: Site, address: str) -> str:
    """A token as digests mailed before subscriber ids carried it (the address inside)."""
    key = (site.config.paths.state / "secret.key").read_text().strip().encode()
    mac = hmac.new(key, b"statement-feeds/unsubscribe\x00" + address.encode(), "sha256")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(address.encode())}.{b64(mac.digest()[:16])}"


def test_old_unsubscribe_links_keep_working_and_lead_to_opaque_links(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        old = _legacy_unsubscribe_token(site, "anna@example.org")
        assert old.startswith("YW5uYUBleGFtcGxlLm9yZw.")
        status, _, body = await site.get(f"unsubscribe?token={old}")
        page = body.decode()
        assert status == 200 and "anna@example.org" in page
        prefs = re.search(r"preferences\?token=([^\"&]+)", page)
        assert prefs and not any(f in prefs[1] for f in _b64_fragments("anna@example.org"))
        status, _, body = await site.get(f"preferences?token={prefs[1]}")
        assert status == 200 and b"anna@example.org" in body  # the new link resolves
        one_click = {"List-Unsubscribe": "One-Click"}
        assert (await site.post(f"unsubscribe?token={old}", data=one_click))[0] == 200
        with site.store() as store:
            assert store.is_blocked("anna@example.org")

    run_site(tmp_path, smtp, scenario)


def test_old_preferences_links_work_until_they_expire(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        expires = int((START + timedelta(days=30)).timestamp())
        old = site.signer.sign("preferences", "anna@example.org", expires)  # address inside
        status, _, body = await site.get(f"preferences?token={old}")
        assert status == 200 and b"anna@example.org" in body
        site.clock.now = START + timedelta(days=30, seconds=1)
        assert (await site.get(f"preferences?token={old}"))[0] == 400

    run_site(tmp_path, smtp, scenario)


def test_a_genuine_token_for_an_id_the_store_does_not_know_does_nothing(
    tmp_path: Path, smtp: RecordingServer
) -> None:
    async def scenario(site: Site) -> None:
        token = site.signer.unsubscribe_token("never-recorded@example.org")  # valid MAC
        one_click = {"List-Unsubscribe": "One-Click"}
        assert (await site.get(f"unsubscribe?token={token}"))[0] == 400
        assert (await site.post(f"unsubscribe?token={token}", data=one_click))[0] == 400
        sid = token.partition(".")[0]
        forged_prefs = site.signer.sign("preferences", sid, 2**40)
        assert (await site.get(f"preferences?token={forged_prefs}"))[0] == 400
        with site.store() as store:
            assert not store.is_blocked("never-recorded@example.org")

    run_site(tmp_path, smtp, scenario)
