"""Times shown to people (``status``, ``deliveries``, the logs) have one format: ISO 8601
to the second with the offset, in the site's time zone."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from statement_feeds.cli import cli
from statement_feeds.clock import iso_time
from statement_feeds.logs import configure_logging, event, use_timezone

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"
# Anything that looks like a time of day: each must be part of an ISO 8601 time above.
CLOCK = re.compile(r"\d\d:\d\d")


def times_in(text: str) -> list[str]:
    return re.findall(ISO, text)


def stray_times(text: str) -> list[str]:
    """Times of day not inside an ISO 8601 time with an offset."""
    return [m.group(0) for m in CLOCK.finditer(re.sub(ISO, "", text))]


@pytest.fixture
def tokyo(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    done = CliRunner().invoke(cli, ["init", str(site), "--timezone", "Asia/Tokyo"])
    assert done.exit_code == 0, done.output
    return site / "statement-feeds.toml"


def test_iso_time_is_in_the_zone_given_with_its_offset() -> None:
    moment = datetime(2026, 12, 2, 23, 30, 15, 123456, tzinfo=UTC)
    assert iso_time(moment, ZoneInfo("Asia/Tokyo")) == "2026-12-03T08:30:15+09:00"
    assert iso_time(moment, ZoneInfo("America/New_York")) == "2026-12-02T18:30:15-05:00"


def test_status_shows_every_time_in_the_site_zone(tokyo: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(tokyo), "build"]).exit_code == 0
    result = runner.invoke(cli, ["--config", str(tokyo), "status"])
    assert result.exit_code == 0, result.output
    found = times_in(result.output)
    assert len(found) >= 4, result.output  # feed written, last build, next daily and weekly
    assert all(t.endswith("+09:00") for t in found), result.output
    assert stray_times(result.output) == [], result.output


def test_log_lines_and_their_time_fields_use_the_site_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(0, "json")
    try:
        use_timezone(ZoneInfo("Asia/Tokyo"))
        due = datetime(2026, 12, 2, 22, 0, tzinfo=UTC)
        event(logging.getLogger("statement_feeds.test"), logging.INFO, "x", due=due, n=1)
        line = json.loads(capsys.readouterr().err)
        assert re.fullmatch(ISO, line["time"]) and line["time"].endswith("+09:00")
        assert line["due"] == "2026-12-03T07:00:00+09:00" and line["n"] == 1
    finally:
        use_timezone(None)


@pytest.mark.slow
def test_the_daemon_logs_in_the_site_zone(tokyo: Path) -> None:
    """A real ``run``: every line's time, and the next edition's, in +09:00."""
    log = tokyo.parent / "daemon.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "statement_feeds", "--config", str(tokyo), "-v", "run"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "STATEMENT_FEEDS_TRUSTED_PROXIES": "0"},
        )
        try:
            deadline = time.monotonic() + 30
            while 'event="daemon ready"' not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    text = log.read_text()
    stamps = re.findall(r"^time=(\S+) ", text, re.MULTILINE)
    assert stamps and len(stamps) == len(text.splitlines()), text
    assert all(re.fullmatch(ISO, s) and s.endswith("+09:00") for s in stamps), text
    assert stray_times(text) == [], text
