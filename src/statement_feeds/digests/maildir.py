"""Handing messages over to a Maildir: :class:`MaildirMessenger` (no SMTP server)."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Awaitable
from pathlib import Path

from ..errors import TemporaryDeliveryError
from .record import cleared

__all__ = ["MaildirMessenger"]


class MaildirMessenger:
    """Writes each message into the Maildir at ``path`` (tmp/, fsync, rename into new/)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        for folder in ("tmp", "new", "cur"):
            (path / folder).mkdir(parents=True, exist_ok=True)

    async def send(
        self, sender: str, recipient: str, message: bytes, ready: Awaitable[bool] | None = None
    ) -> bool:
        if not await cleared(ready):
            return False
        try:
            await asyncio.to_thread(self._write, message)
        except OSError as exc:  # disk full, permissions: may clear up, so retry later
            raise TemporaryDeliveryError(
                f"cannot write to {self.path}: {exc}", recipient=recipient
            ) from exc
        return True

    def _write(self, message: bytes) -> None:
        # Maildir files use the local line ending; the unique name follows the
        # Maildir convention (time.pid_counter.host) so mail clients accept it.
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(self._counter)}.{self._host}"
        temporary = self.path / "tmp" / name
        with open(temporary, "wb") as handle:
            handle.write(message.replace(b"\r\n", b"\n"))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, self.path / "new" / name)
        fd = os.open(self.path / "new", os.O_RDONLY)
        try:
            os.fsync(fd)  # make the rename itself durable
        finally:
            os.close(fd)

    async def close(self) -> None:
        return None
