"""The daemon processes `digest.bounce_mailbox` at every rescan: a real `run` subprocess
on the site of ``test_bounces`` (edition 2 sent through aiosmtpd with VERP senders)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_bounces import SAMPLES, deliver_to, files, returned, sent, subscriber  # noqa: F401
from test_digest_cli import T1, Site, server, site  # noqa: F401 (fixtures)

from daemon_digest_helpers import clean_env

pytestmark = pytest.mark.slow
RUN = ("run", "--rescan", "0.2")


def until(check: Callable[[], bool], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out; daemon log:\n" + log.read_text(encoding="utf-8"))
        time.sleep(0.05)


@pytest.fixture
def daemon(sent: Site) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:  # noqa: F811
    log = sent.root / "daemon.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "statement_feeds",
                "--config",
                str(sent.config),
                "-v",
                "run",
                "--rescan",
                "0.2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=clean_env(STATEMENT_FEEDS_FAKE_START=(T1 + timedelta(hours=3)).isoformat()),
            cwd=sent.root,
        )
        try:
            yield proc, log
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def test_the_daemon_processes_the_maildir_and_survives_losing_it(
    sent: Site,  # noqa: F811
    daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, log = daemon
    maildir = sent.root / "bounces"
    deliver_to(maildir, "complaint", returned(sent, "arf.eml", "en@example.com"))
    deliver_to(maildir, "garbage", (SAMPLES / "garbage.eml").read_bytes())

    until(lambda: files(maildir / ".unrecognised" / "cur") == ["garbage:2,S"], log)
    until(lambda: 'event="bounces processed"' in log.read_text(encoding="utf-8"), log)

    state = subscriber(sent, "en@example.com")
    assert state is not None and state[1] is not None  # unsubscribed by the complaint
    assert files(maildir / ".processed" / "cur") == ["complaint:2,S"]
    text = log.read_text(encoding="utf-8")
    assert "unsubscribed=1" in text and "unrecognised=1" in text
    shutil.rmtree(maildir / "cur")  # the Maildir breaks under the daemon
    until(lambda: "bounce processing failed" in log.read_text(encoding="utf-8"), log)
    assert proc.poll() is None  # reported, and the daemon goes on
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
