"""What the WebSub pings did, seen from outside: ``/metrics`` (a real server) and
``statement-feeds status``, both reading the daemon's ``<state>/websub.json``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from click.testing import CliRunner

from hub_server import HubServer, running_hub
from smtp_server import free_port
from statement_feeds.cli import cli
from statement_feeds.config import load_config
from statement_feeds.daemon.websub import Pinger
from statement_feeds.feeds.build import Publisher
from statement_feeds.feeds.hub_record import HubRecord
from statement_feeds.web.app import start_http
from statement_feeds.web.metrics import render_metrics

MakeSite = Callable[..., Path]
MakeText = Callable[..., str]
T0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def _site(root: Path, make_site: MakeSite, statement_md: MakeText, hubs: list[str]) -> Path:
    port = free_port()
    config = make_site(
        root,
        statements={"news.en.md": statement_md(title="News", date="2026-12-01")},
        extra_toml=f'\n[http]\nlisten = "127.0.0.1:{port}"\n'
        f'public_url = "http://127.0.0.1:{port}/"\n',
    )
    listed = ", ".join(f'"{h}"' for h in hubs)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[feeds]\n", f"[feeds]\nwebsub_hubs = [{listed}]\n"), "utf-8")
    return config


def test_metrics_and_status_show_each_hub(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    async def scenario(good: HubServer) -> None:
        async with running_hub() as down:
            down.default = 503
            path = _site(tmp_path / "site", make_site, statement_md, [good.url, down.url])
            config = load_config(path)
            Publisher(config, lambda: T0).build()
            pinger = Pinger(config.feeds.websub_hubs, config.paths.state, lambda: T0)
            pinger.publish(["https://example.org/feeds/en.atom"])
            await pinger.run_due()
            handle = await start_http(config, lambda: T0)
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(handle.url + "metrics") as response,
                ):
                    assert response.status == 200
                    text = await response.text()
            finally:
                await handle.close()
            stamp = int(T0.timestamp())
            ok, failed = (
                "websub_last_success_timestamp_seconds",
                "websub_last_failure_timestamp_seconds",
            )
            for line in (
                f'statement_feeds_websub_pending{{hub="{good.url}"}} 0',
                f'statement_feeds_websub_pending{{hub="{down.url}"}} 1',
                f'statement_feeds_websub_last_status{{hub="{good.url}"}} 204',
                f'statement_feeds_websub_last_status{{hub="{down.url}"}} 503',
                f'statement_feeds_{ok}{{hub="{good.url}"}} {stamp}',
                f'statement_feeds_{ok}{{hub="{down.url}"}} 0',
                f'statement_feeds_{failed}{{hub="{down.url}"}} {stamp}',
                f'statement_feeds_websub_given_up_total{{hub="{down.url}"}} 0',
                "# TYPE statement_feeds_websub_given_up_total counter",
            ):
                assert line in text.splitlines(), line
            for line in text.splitlines():
                assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [0-9.]+", line), (
                    line
                )

            result = CliRunner().invoke(cli, ["--config", str(path), "status"])
            assert result.exit_code == 0, result.output
            lines = [x for x in result.output.splitlines() if x.startswith("websub")]
            assert len(lines) == 2, result.output
            assert good.url in lines[0] and "last ok 2026-12-03T07:00:00" in lines[0]
            assert "last status 204, pending 0, given up 0" in lines[0]
            assert down.url in lines[1] and "last ok never" in lines[1]
            assert "last status 503, pending 1, next try 2026-12-03T07:00:30" in lines[1]

    async def go() -> None:
        async with running_hub() as good:
            await scenario(good)

    asyncio.run(go())


def test_no_hubs_no_websub_metrics_or_status_lines(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText
) -> None:
    path = _site(tmp_path / "site", make_site, statement_md, [])
    result = CliRunner().invoke(cli, ["--config", str(path), "status"])
    assert result.exit_code == 0 and "websub" not in result.output
    text = render_metrics(
        statements={}, feeds=0, subscribers={}, editions=0, deliveries={}, last_build=None
    )
    assert "websub" not in text


def test_a_hub_label_is_escaped() -> None:
    text = render_metrics(
        statements={},
        feeds=0,
        subscribers={},
        editions=0,
        deliveries={},
        last_build=None,
        hubs=[HubRecord('https://h.example.org/"x\\')],
    )
    assert 'statement_feeds_websub_pending{hub="https://h.example.org/\\"x\\\\"} 0' in text
