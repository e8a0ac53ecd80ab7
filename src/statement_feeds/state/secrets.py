"""The HMAC key behind Message-IDs and unsubscribe tokens.

``$STATEMENT_FEEDS_SECRET_KEY`` wins: one key, or several separated by commas for
rotation (the first signs, all verify). Otherwise ``<state>/secret.key`` holds the
keys one per line, and is generated on first use: random, mode 0600, created
atomically (written to a temporary file, then hard-linked into place, so a
concurrent first run can never see a half-written key or overwrite another's).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from .. import environment
from ..errors import ConfigError, StateError

__all__ = ["KEY_FILE", "SECRET_ENV", "configured_keys", "load_keys", "new_key"]

SECRET_ENV = environment.SECRET_KEY_ENV
KEY_FILE = "secret.key"
_MIN_LENGTH = 16


def configured_keys(environ: Mapping[str, str] | None = None) -> list[bytes] | None:
    """``$STATEMENT_FEEDS_SECRET_KEY``'s keys, newest first; None when it is not set."""
    configured = environment.secret_keys(environ)
    return _parse(configured, SECRET_ENV) if configured.strip() else None


def new_key() -> bytes:
    """A fresh random key, as the key file holds it (64 hex digits)."""
    return secrets.token_hex(32).encode("ascii")


def load_keys(state_dir: Path, environ: Mapping[str, str] | None = None) -> list[bytes]:
    """The signing keys, newest first; creates the key file when there is none."""
    configured = configured_keys(environ)
    if configured is not None:
        return configured
    path = state_dir / KEY_FILE
    if not path.exists():
        _create(path)
    try:
        return _parse(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc


def _parse(text: str, where: str) -> list[bytes]:
    keys = [part.strip().encode("utf-8") for part in text.replace("\n", ",").split(",")]
    keys = [key for key in keys if key]
    if not keys or any(len(key) < _MIN_LENGTH for key in keys):
        raise ConfigError(
            f"every secret key must be at least {_MIN_LENGTH} characters; "
            "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'",
            path=where,
        )
    return keys


def _create(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, new_key() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
        _fsync_dir(path.parent)
    except OSError as exc:
        raise StateError(f"cannot create the secret key file {path}: {exc}") from exc


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
