"""`state backup FILE`: SQLite's online backup while a real `run` daemon sends an edition to
a real (slowed) aiosmtpd server, then a restore into a new folder that `status` reads."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon_digest_helpers import DigestSite, until
from smtp_server import RecordingServer, free_port
from statement_feeds.state.backup import backup_state
from statement_feeds.state.sqlite import SqliteStore

READERS = [f"reader{i:03d}@example.com" for i in range(160)]


def _consistent(backup: Path) -> tuple[int, int]:
    """(deliveries planned, deliveries sent) in a backup, checked to agree with itself."""
    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        planned = db.execute("SELECT coalesce(sum(deliveries), 0) FROM editions").fetchone()[0]
        rows = db.execute("SELECT count(*) FROM deliveries").fetchone()[0]
        sent = db.execute("SELECT count(*) FROM deliveries WHERE state = 'sent'").fetchone()[0]
    assert rows == planned  # an edition and its deliveries: one transaction, one snapshot
    return int(planned), int(sent)


@pytest.mark.slow
def test_backup_while_the_daemon_sends_then_restore_and_status(tmp_path: Path) -> None:
    with RecordingServer() as server:
        server.data_delay = 0.05  # an edition that takes seconds to send (160 / 2 × 0.05)
        site = DigestSite(tmp_path / "site", server.port, grace="1s")
        site.subscribe(READERS)
        daemon = site.start()
        backups: list[tuple[int, int]] = []
        try:
            daemon.wait_ready()
            until(lambda: len(site.ledger("SELECT email FROM subscribers")) == len(READERS))
            joined = max(
                datetime.fromisoformat(str(t).replace("Z", "+00:00"))
                for (t,) in site.ledger("SELECT joined_at FROM subscribers")
            )
            date = joined.replace(microsecond=0) + timedelta(seconds=1)
            site.publish("news.md", "Fresh news", date)
            until(lambda: datetime.now(UTC) > date, 5)
            assert site.cli("digest", "send").returncode == 0
            until(lambda: len(server.messages) >= 10, 20, daemon)
            for number in range(3):  # while it sends
                target = tmp_path / f"backup-{number}.sqlite"
                done = site.cli("state", "backup", str(target))
                assert done.returncode == 0, done.stderr
                assert f"to {target} (" in done.stdout and "integrity ok" in done.stdout
                backups.append(_consistent(target))
            until(lambda: set(site.states().values()) == {"sent"}, 60, daemon)
            final = tmp_path / "final.sqlite"
            last = site.cli("state", "backup", str(final))
            assert last.returncode == 0
            key = site.root / "state" / "secret.key"
            assert f"keep with it: {key}, {site.config}, {site.root / 'statements'}" in last.stdout
        finally:
            code, _ = daemon.terminate()
        assert code == 0
    assert [planned for planned, _ in backups] == [len(READERS)] * 3
    assert any(0 < sent < len(READERS) for _, sent in backups), backups  # mid-edition
    assert _consistent(final) == (len(READERS), len(READERS))

    # Restore as the README says: a new folder, the config, secret.key, the statements.
    restored = tmp_path / "restored"
    shutil.copytree(site.root / "statements", restored / "statements")
    shutil.copytree(site.root / "subscribers", restored / "subscribers")
    shutil.copy(site.config, restored / "statement-feeds.toml")
    (restored / "state").mkdir()
    shutil.copy(site.root / "state" / "secret.key", restored / "state" / "secret.key")
    shutil.copy(final, restored / "state" / "state.sqlite")
    status = DigestSite(restored, free_port()).cli("status")

    assert status.returncode == 0, status.stderr
    assert f"messages {len(READERS)}: sent {len(READERS)}, pending 0" in status.stdout
    assert f"ledger   sent {len(READERS)}, pending 0, deferred 0, failed 0" in status.stdout


def _site(tmp_path: Path, extra: str = "") -> DigestSite:
    site = DigestSite(tmp_path / "site", free_port())
    if extra:
        site.config.write_text(site.config.read_text() + extra)
    site.join(["someone@example.com"], datetime(2024, 5, 1, tzinfo=UTC))  # a state on disk
    return site


def test_an_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    site = _site(tmp_path)
    target = tmp_path / "backup.sqlite"
    target.write_text("precious")

    refused = site.cli("state", "backup", str(target))

    assert refused.returncode == 2
    assert f"{target} exists: give another file name, or --force" in refused.stderr
    assert target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.sqlite", "site"]  # no temp

    forced = site.cli("state", "backup", "--force", str(target))

    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT email FROM subscribers").fetchall() == [("someone@example.com",)]


def test_the_backup_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # It holds every subscriber's address: 0600 whatever the umask and the file replaced.
    site = _site(tmp_path)
    target = tmp_path / "backup.sqlite"
    target.write_text("old")
    target.chmod(0o644)

    done = site.cli("state", "backup", "--force", str(target))

    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert (site.root / "state" / "state.sqlite").stat().st_mode & 0o044  # not by umask alone


def test_with_a_postgresql_state_it_says_to_use_pg_dump(tmp_path: Path) -> None:
    site = _site(tmp_path, '\n[state]\nurl = "postgresql://feeds@db.example.org/statements"\n')

    refused = site.cli("state", "backup", str(tmp_path / "backup.sqlite"))

    assert refused.returncode == 2
    assert "the state is in PostgreSQL (db.example.org:5432/statements)" in refused.stderr
    assert "back it up with pg_dump" in refused.stderr
    assert not (tmp_path / "backup.sqlite").exists()


def test_no_state_yet_is_a_clear_error(tmp_path: Path) -> None:
    site = DigestSite(tmp_path / "site", free_port())

    refused = site.cli("state", "backup", str(tmp_path / "backup.sqlite"))

    assert refused.returncode == 2
    assert "there is no state database at" in refused.stderr
    assert not (site.root / "state" / "state.sqlite").exists()  # none was created


def test_a_missing_folder_or_a_folder_as_file_is_refused(tmp_path: Path) -> None:
    site = _site(tmp_path)
    missing = site.cli("state", "backup", str(tmp_path / "nowhere" / "backup.sqlite"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    folder = site.cli("state", "backup", str(tmp_path))
    assert folder.returncode == 2


def test_a_damaged_state_fails_the_check_and_leaves_no_backup(tmp_path: Path) -> None:
    site = _site(tmp_path)
    site.join([f"r{i}@example.com" for i in range(2000)], datetime(2024, 5, 2, tzinfo=UTC))
    database = site.root / "state" / "state.sqlite"
    db = sqlite3.connect(database)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (root,) = db.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_subscribers_1'"
    ).fetchone()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    db.close()
    with database.open("r+b") as raw:  # scribble over the index's root page
        raw.seek((root - 1) * page_size + 12)  # its cell pointers: point them astray
        raw.write(b"\x07" * 40)
    target = tmp_path / "backup.sqlite"

    failed = site.cli("state", "backup", str(target))

    assert failed.returncode == 2, failed.stdout
    assert "failed its integrity check" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no backup, no temp file


def test_paths_with_uri_characters_are_backed_up(tmp_path: Path) -> None:
    state = tmp_path / "we?ird #state%20"
    with SqliteStore.open(state) as store:
        store.sync_subscribers(["odd@example.com"], datetime(2024, 5, 1, tzinfo=UTC))
    target = tmp_path / "back?up #1.sqlite"

    report = backup_state(state, target)

    assert report.target == target and report.bytes == target.stat().st_size
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT email FROM subscribers").fetchall() == [("odd@example.com",)]
