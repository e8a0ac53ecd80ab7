"""Where returned mail is read from: a Maildir, or an IMAP folder.

Maildir: every message in ``new/`` and ``cur/`` is read; when done it is renamed (one
atomic rename, never copied) into the Maildir++ subfolder ``.processed/cur/`` or
``.unrecognised/cur/``, which mail clients show as folders. The top folder then holds
only what no run has seen yet.

IMAP (``imaps://user@host[:port][/folder]``, or ``imap://`` with STARTTLS; plain text
only to a loopback address): the unseen messages of the folder (default INBOX);
processed ones are marked seen, unrecognised ones seen and flagged. The password comes
from ``$STATEMENT_FEEDS_IMAP_PASSWORD`` (``environment.imap_password``).
"""

from __future__ import annotations

import imaplib
import ipaddress
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError

__all__ = ["ImapMailbox", "MaildirMailbox", "open_imap"]

_PROCESSED, _UNRECOGNISED = ".processed", ".unrecognised"


class MaildirMailbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        for folder in ("new", "cur"):
            if not os.access(path / folder, os.R_OK | os.W_OK | os.X_OK):
                raise ConfigError(
                    f"cannot read the Maildir {path}: {path / folder} is missing or not "
                    "readable and writable; give the folder mail for bounces+*@ is "
                    "delivered to (with new/ and cur/ in it)"
                )

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for folder in ("new", "cur"):
            for name in sorted(os.listdir(self.path / folder)):
                if name.startswith("."):
                    continue
                try:
                    data = (self.path / folder / name).read_bytes()
                except FileNotFoundError:  # taken by another reader meanwhile
                    continue
                except OSError as exc:
                    raise ConfigError(f"cannot read {self.path / folder / name}: {exc}") from exc
                yield f"{folder}/{name}", data

    def done(self, name: str, *, recognised: bool) -> None:
        target = self.path / (_PROCESSED if recognised else _UNRECOGNISED)
        for folder in ("tmp", "new", "cur"):
            (target / folder).mkdir(parents=True, exist_ok=True)
        base = name.partition("/")[2].partition(":2,")[0]  # flags are ours to set now
        with suppress(FileNotFoundError):  # another run (the daemon's) moved it first
            os.rename(self.path / name, target / "cur" / f"{base}:2,S")


class ImapMailbox:
    """An IMAP folder, logged in; use as a context manager (logs out on exit)."""

    def __init__(self, client: imaplib.IMAP4, where: str) -> None:
        self.client = client
        self.where = where  # host:port, for messages

    def messages(self) -> Iterator[tuple[str, bytes]]:
        with self._failures():
            _, found = self.client.uid("SEARCH", "UNSEEN")
        for uid in (found[0] or b"").decode("ascii").split():
            with self._failures():
                _, parts = self.client.uid("FETCH", uid, "(BODY.PEEK[])")
            body = next((p[1] for p in parts if isinstance(p, tuple)), None)
            if body is not None:
                yield uid, bytes(body)

    def done(self, name: str, *, recognised: bool) -> None:
        flags = r"(\Seen)" if recognised else r"(\Seen \Flagged)"
        with self._failures():
            self.client.uid("STORE", name, "+FLAGS", flags)

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """A dropped connection or a refused command ends the run, saying where."""
        try:
            yield
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ConfigError(f"the IMAP server {self.where} failed: {exc}") from exc

    def __enter__(self) -> ImapMailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        with suppress(imaplib.IMAP4.error, OSError):
            self.client.logout()


def open_imap(url: str, password: str, *, timeout: float = 60.0) -> ImapMailbox:
    """Connect, log in and select the folder of ``url``; ConfigError naming what failed."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ConfigError(
            f"--imap must be imaps://USER@HOST[:PORT][/FOLDER] (or imap:// for STARTTLS), "
            f"got {url!r}",
        )
    host, user = parts.hostname, unquote(parts.username)
    folder = unquote(parts.path.strip("/")) or "INBOX"
    where = f"{host}:{parts.port or (993 if parts.scheme == 'imaps' else 143)}"
    if not password:
        raise ConfigError("no IMAP password: set $STATEMENT_FEEDS_IMAP_PASSWORD")
    try:
        client = _connect(parts.scheme, host, parts.port, timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ConfigError(f"cannot connect to the IMAP server {where}: {exc}") from exc
    try:
        client.login(user, password)
        status, reply = client.select(_quoted(folder))
    except (OSError, imaplib.IMAP4.error) as exc:
        client.shutdown()
        raise ConfigError(
            f"the IMAP server {where} refused the login of {user!r}: {exc}; check the user "
            "and $STATEMENT_FEEDS_IMAP_PASSWORD"
        ) from exc
    if status != "OK":
        client.logout()
        raise ConfigError(f"no IMAP folder {folder!r} on {where}: {reply[0]!r}")
    return ImapMailbox(client, where)


def _connect(scheme: str, host: str, port: int | None, timeout: float) -> imaplib.IMAP4:
    context = ssl.create_default_context()
    if scheme == "imaps":
        return imaplib.IMAP4_SSL(host, port or 993, ssl_context=context, timeout=timeout)
    client = imaplib.IMAP4(host, port or 143, timeout=timeout)
    if "STARTTLS" in client.capabilities:
        client.starttls(context)
    elif not _loopback(host):  # never a password in plain text over a network
        client.shutdown()
        raise imaplib.IMAP4.error("the server offers no STARTTLS; use imaps://")
    return client


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
