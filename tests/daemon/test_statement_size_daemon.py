"""The daemon and feeds.max_statement_bytes: a published statement that grows past the
limit is reported and leaves the feed (the build's side is tests/feeds/test_statement_size.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_run import Daemon, Site, until

LIMIT = 4096


def sized(title: str, size: int) -> str:
    """A valid statement file of exactly ``size`` bytes (ASCII)."""
    head = f"---\ntitle: {title}\ndate: 2024-03-01\n---\n\n"
    filler = ("word " * size)[: size - len(head) - 1]
    return head + filler + "\n"


@pytest.mark.slow
def test_the_daemon_drops_a_statement_that_grows_past_the_limit(tmp_path: Path) -> None:
    site = Site(tmp_path)
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(text.replace("[feeds]\n", f"[feeds]\nmax_statement_bytes = {LIMIT}\n"))
    site.write("stays.md", sized("Stays", 300))
    site.write("grows.md", sized("Grows", 300))
    daemon = Daemon(site, "--rescan", "30")
    try:
        daemon.wait_ready()
        assert "Grows" in site.feed_text()
        site.write("grows.md", sized("Grown", LIMIT + 1))
        until(lambda: 'event="file problem" path=grows.md' in site.log_text(), daemon=daemon)
        until(lambda: "Grow" not in site.feed_text(), daemon=daemon)
        assert "Stays" in site.feed_text()
        assert f"more than feeds.max_statement_bytes ({LIMIT})" in site.log_text()
    finally:
        assert daemon.stop() == 0
