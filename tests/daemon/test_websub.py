"""WebSub publish pings against a real hub: an aiohttp server in the test's loop that
records each request and answers 2xx, 4xx, 5xx or stalls (``hub_server``).

Time is a fake clock moved by the tests: a retry is due when the clock says so, and the
daemon's retry timer is read, not waited for.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub_server import STALL, HubServer, running_hub
from smtp_server import free_port
from statement_feeds.config import load_config
from statement_feeds.daemon.run import Daemon, DaemonOptions
from statement_feeds.daemon.websub import (
    FIRST_RETRY,
    LONGEST_RETRY,
    MAX_ATTEMPTS,
    Pinger,
    retry_delay,
)
from statement_feeds.feeds.hub_record import RECORD_NAME, load_records

MakeSite = Callable[..., Path]
MakeText = Callable[..., str]
T0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
FEED = "https://example.org/feeds/en.atom"
ARCHIVE = "https://example.org/feeds/archive/en/1.atom"


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def with_hub(scenario: Callable[[HubServer], Awaitable[None]]) -> None:
    async def go() -> None:
        async with running_hub() as hub:
            await scenario(hub)

    asyncio.run(go())


def test_a_ping_is_a_form_encoded_publish_with_the_self_url(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(hub: HubServer) -> None:
        pinger = Pinger([hub.url], tmp_path, clock)
        pinger.publish([FEED, ARCHIVE])
        assert await pinger.run_due() == 2
        assert sorted(hub.topics()) == [ARCHIVE, FEED]
        for ping in hub.pings:
            assert ping.content_type == "application/x-www-form-urlencoded"
            assert ping.form["hub.mode"] == ["publish"]
            assert ping.form["hub.url"] == ping.form["hub.topic"]  # both spellings
        record = pinger.records[hub.url]
        assert (record.last_ok, record.last_status, record.pending) == (T0, "204", {})
        assert pinger.next_due() is None
        assert await pinger.run_due() == 0  # nothing left: no request
        assert len(hub.pings) == 2

    with_hub(scenario)
    on_file = load_records(tmp_path)
    assert list(on_file) and all(r.last_ok == T0 and not r.pending for r in on_file.values())


def test_a_5xx_is_retried_after_the_backoff_and_then_succeeds(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(hub: HubServer) -> None:
        hub.answers = [503, 502]
        pinger = Pinger([hub.url], tmp_path, clock)
        pinger.publish([FEED])
        await pinger.run_due()
        record = pinger.records[hub.url]
        assert (record.last_status, record.last_failure, record.last_ok) == ("503", T0, None)
        assert pinger.next_due() == T0 + FIRST_RETRY
        # Not due yet: nothing is sent however often the daemon looks.
        clock.now = T0 + FIRST_RETRY - timedelta(seconds=1)
        assert await pinger.run_due() == 0 and len(hub.pings) == 1
        clock.now = T0 + FIRST_RETRY
        await pinger.run_due()  # 502: the pause doubles
        assert pinger.next_due() == clock.now + 2 * FIRST_RETRY
        assert record.pending[FEED].attempts == 2
        clock.now = pinger.next_due() or T0
        await pinger.run_due()  # the default answer: 204
        assert (record.last_status, record.last_ok, record.pending) == ("204", clock.now, {})
        assert record.given_up == 0 and len(hub.pings) == 3

    with_hub(scenario)


def test_a_4xx_is_given_up_at_once_not_retried(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(hub: HubServer) -> None:
        hub.default = 400
        pinger = Pinger([hub.url], tmp_path, clock)
        pinger.publish([FEED])
        await pinger.run_due()
        record = pinger.records[hub.url]
        assert (record.last_status, record.given_up, record.pending) == ("400", 1, {})
        assert pinger.next_due() is None
        clock.now = T0 + timedelta(days=1)
        assert await pinger.run_due() == 0
        assert len(hub.pings) == 1  # never again, until the feed changes again
        pinger.publish([FEED])
        await pinger.run_due()
        assert len(hub.pings) == 2 and record.given_up == 2

    with_hub(scenario)


def test_429_means_later_not_never(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(hub: HubServer) -> None:
        hub.answers = [429]
        pinger = Pinger([hub.url], tmp_path, clock)
        pinger.publish([FEED])
        await pinger.run_due()
        assert pinger.next_due() == T0 + FIRST_RETRY
        assert pinger.records[hub.url].given_up == 0

    with_hub(scenario)


def test_a_stalled_hub_times_out_and_is_retried(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(hub: HubServer) -> None:
        hub.answers = [STALL]
        pinger = Pinger([hub.url], tmp_path, clock, timeout=0.3)
        pinger.publish([FEED])
        started = time.monotonic()
        await pinger.run_due()
        assert time.monotonic() - started < 3
        record = pinger.records[hub.url]
        assert (record.last_status, record.last_failure) == ("timeout", T0)
        assert record.pending[FEED].attempts == 1
        clock.now = T0 + FIRST_RETRY
        await pinger.run_due()
        assert (record.last_status, record.pending) == ("204", {})

    with_hub(scenario)


def test_a_hub_that_is_not_there_is_retried(tmp_path: Path) -> None:
    clock = Clock()
    nobody = f"http://127.0.0.1:{free_port()}/hub"
    pinger = Pinger([nobody], tmp_path, clock)
    pinger.publish([FEED])
    asyncio.run(pinger.run_due())
    record = pinger.records[nobody]
    assert record.last_status.startswith("error: ") and record.pending[FEED].attempts == 1


def test_retries_stop_after_max_attempts_with_pauses_doubling_to_an_hour(tmp_path: Path) -> None:
    clock = Clock()
    pauses = [retry_delay(n) for n in range(1, MAX_ATTEMPTS)]
    assert pauses[0] == FIRST_RETRY and pauses[-1] == LONGEST_RETRY
    assert all(b == min(2 * a, LONGEST_RETRY) for a, b in itertools.pairwise(pauses))

    async def scenario(hub: HubServer) -> None:
        hub.default = 500
        pinger = Pinger([hub.url], tmp_path, clock)
        pinger.publish([FEED])
        seen = []
        for _ in range(MAX_ATTEMPTS):
            before = clock.now
            await pinger.run_due()
            due = pinger.next_due()
            if due is not None:
                seen.append(due - before)
                clock.now = due
        assert seen == pauses
        record = pinger.records[hub.url]
        assert (record.pending, record.given_up) == ({}, 1)
        assert len(hub.pings) == MAX_ATTEMPTS

    with_hub(scenario)


def test_each_hub_has_its_own_record_and_queue(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(first: HubServer) -> None:
        async with running_hub() as second:
            second.default = 503
            pinger = Pinger([first.url, second.url], tmp_path, clock)
            pinger.publish([FEED])
            await pinger.run_due()
            assert not pinger.records[first.url].pending
            assert list(pinger.records[second.url].pending) == [FEED]
            assert len(first.pings) == len(second.pings) == 1

    with_hub(scenario)


def test_pending_pings_survive_a_restart_and_removed_hubs_are_forgotten(tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(hub: HubServer) -> None:
        hub.answers = [503]
        Pinger([hub.url, "https://gone.example.org/"], tmp_path, clock).publish([FEED])
        again = Pinger([hub.url], tmp_path, clock)  # a new daemon, one hub removed
        assert list(again.records) == [hub.url]
        await again.run_due()  # the ping queued before the restart: 503
        clock.now = T0 + FIRST_RETRY
        third = Pinger([hub.url], tmp_path, clock)
        assert third.records[hub.url].pending[FEED].attempts == 1
        await third.run_due()
        assert third.records[hub.url].pending == {} and len(hub.pings) == 2

    with_hub(scenario)


def test_a_broken_record_file_is_read_as_empty(tmp_path: Path) -> None:
    (tmp_path / RECORD_NAME).write_text('{"hubs": [{"nothing": 1}]}', encoding="utf-8")
    assert load_records(tmp_path) == {}
    pinger = Pinger(["https://hub.example.org/"], tmp_path, Clock())
    pinger.publish([FEED])
    document = json.loads((tmp_path / RECORD_NAME).read_text(encoding="utf-8"))
    assert document["hubs"][0]["pending"][FEED]["attempts"] == 0


# --- in the daemon -----------------------------------------------------------------------


def _site(tmp_path: Path, make_site: MakeSite, statement_md: MakeText, hub: str) -> Path:
    config = make_site(
        tmp_path / "site",
        statements={"news.en.md": statement_md(title="News", date="2026-12-01")},
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[feeds]\n", f'[feeds]\nwebsub_hubs = ["{hub}"]\n'), "utf-8")
    return config


def test_a_stalled_hub_neither_blocks_nor_fails_the_build(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    async def scenario(hub: HubServer) -> None:
        hub.answers = [STALL]
        config_path = _site(tmp_path, make_site, statement_md, hub.url)
        config = load_config(config_path)
        daemon = Daemon(config_path, config, Clock(), None, DaemonOptions())
        daemon.websub.pinger.timeout = 1.0
        await daemon._build({"start"})
        # The feed is written, and the build returned with the ping not answered yet.
        assert (config.paths.output / "feeds" / "en.atom").is_file()
        await hub.wait_for(1)
        assert daemon.websub.pinger.records[hub.url].last_status == ""  # still held
        assert daemon.tasks.running()
        assert hub.topics() == ["https://example.org/feeds/en.atom"]
        await asyncio.gather(*daemon.tasks.running())  # the timeout ends the ping
        record = daemon.websub.pinger.records[hub.url]
        assert record.last_status == "timeout"
        # The retry is a timer armed at the clock's time of the next try.
        timer = daemon.timers["websub"]
        delay = timer.when() - asyncio.get_running_loop().time()
        assert abs(delay - FIRST_RETRY.total_seconds()) < 1
        daemon.timers.cancel_all()
        # A build that writes nothing pings nobody anew.
        await daemon._build({"rescan"})
        await asyncio.gather(*daemon.tasks.running())
        assert len(hub.pings) == 1

    with_hub(scenario)


def test_the_daemon_pings_only_what_a_build_changed(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    async def scenario(hub: HubServer) -> None:
        config_path = _site(tmp_path, make_site, statement_md, hub.url)
        (config_path.parent / "statements" / "nyheter.ru.md").write_text(
            statement_md(title="Новости", date="2026-12-01"), encoding="utf-8"
        )
        config = load_config(config_path)
        daemon = Daemon(config_path, config, Clock(), None, DaemonOptions())
        await daemon._build({"start"})
        await hub.wait_for(2)
        await asyncio.gather(*daemon.tasks.running())
        assert sorted(hub.topics()) == [
            "https://example.org/feeds/en.atom",
            "https://example.org/feeds/ru.atom",
        ]
        (config_path.parent / "statements" / "more.ru.md").write_text(
            statement_md(title="Ещё", date="2026-12-02"), encoding="utf-8"
        )
        await daemon._build({"watch"})
        await hub.wait_for(3)
        await asyncio.gather(*daemon.tasks.running())
        assert hub.topics()[2:] == ["https://example.org/feeds/ru.atom"]
        assert daemon.websub.pinger.next_due() is None
        with pytest.raises(KeyError):
            daemon.timers["websub"]  # nothing pending: no wake-up armed

    with_hub(scenario)
