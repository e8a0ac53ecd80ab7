"""`state backup FILE`: a consistent copy of the SQLite state, safe while the daemon runs.

SQLite's online backup API (``sqlite3.Connection.backup``) copies the database in ONE
step: one read transaction, so the copy is the state of one moment. Under WAL a reader
never blocks the daemon's writes (nor they it), so no lock is taken. A step-wise backup
(a few pages at a time) would restart whenever the daemon commits, and might never end
on a busy state.

The copy is written to a temporary file beside ``FILE``, checked with ``PRAGMA
integrity_check``, switched to rollback-journal mode (one self-contained file, no
``-wal`` beside it), synced, and only then renamed over ``FILE``: a crash or a failed
check leaves ``FILE`` as it was. ``FILE`` is readable by its owner only (mode 0600).
Restore: stop the daemon, copy the file into a state folder as ``state.sqlite`` (see the
README's "Backup and restore").
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import StateError
from .sqlite import DB_NAME
from .sqlite_errors import map_sqlite_errors

__all__ = ["BackupReport", "backup_state"]


@dataclass(frozen=True)
class BackupReport:
    source: Path
    target: Path
    bytes: int
    seconds: float


def backup_state(state_dir: Path, target: Path, *, force: bool = False) -> BackupReport:
    """Back up ``<state_dir>/state.sqlite`` into ``target`` (StateError when refused)."""
    source = state_dir / DB_NAME
    if not source.is_file():
        raise StateError(f"there is no state database at {source}: nothing to back up")
    _check_target(target, source, force)
    started = time.monotonic()
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # Made first, readable by its owner only (SQLite keeps an existing file's mode, and
        # gives its journal the same): the backup holds every subscriber's address.
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        _copy(source, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        raise StateError(f"cannot write the backup {target}: {exc}") from exc
    finally:
        for leftover in (temporary, temporary.with_name(temporary.name + "-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()
    _fsync_dir(target.parent)
    return BackupReport(source, target, target.stat().st_size, time.monotonic() - started)


def _check_target(target: Path, source: Path, force: bool) -> None:
    if not target.parent.is_dir():
        raise StateError(f"cannot write the backup {target}: {target.parent} is not a folder")
    if target.is_dir():
        raise StateError(f"{target} is a folder: give the backup's file name")
    if target.exists() and target.resolve() == source.resolve():
        raise StateError(f"{target} is the state database itself: back up to another file")
    if target.exists() and not force:
        raise StateError(f"{target} exists: give another file name, or --force to replace it")


def _copy(source: Path, temporary: Path) -> None:
    with map_sqlite_errors("back up the state"):
        # mode=ro: the backup never writes to the state (nor creates it).
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        try:
            dst = sqlite3.connect(temporary, isolation_level=None)
            try:
                src.backup(dst)  # pages=-1 (the default): one step, one snapshot
                dst.execute("PRAGMA journal_mode=DELETE")  # one file, nothing beside it
                problems = _integrity_problems(dst)
                if problems:
                    raise StateError(
                        f"the backup of {source} failed its integrity check "
                        f"({'; '.join(problems[:5])}); {source} itself may be damaged: "
                        "check it with `sqlite3 state.sqlite 'PRAGMA integrity_check'`"
                    )
            finally:
                dst.close()
        finally:
            src.close()
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)  # on disk before the rename makes it the backup
    finally:
        os.close(fd)


def _integrity_problems(db: sqlite3.Connection) -> list[str]:
    """What ``PRAGMA integrity_check`` finds wrong (nothing: an empty list). Damage bad
    enough to stop the check itself is a StoreError (map_sqlite_errors) saying so."""
    with map_sqlite_errors("check the integrity of the backup"):
        problems = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
    return [] if problems == ["ok"] else problems


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
