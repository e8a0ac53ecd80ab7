"""An SMTP server in its own process for the crash tests, logging every message durably.

Run as ``python tests/crash_helpers.py PORT LOG [DELAY [PIPELINING]]``. It prints ``ready`` once
listening and serves until SIGTERM. Each line of LOG is one event, written and
fsync'ed before the SMTP reply goes out:

* ``MSG <rcpt> <Message-ID>`` — a message accepted (one line per envelope recipient);
* ``OPEN`` / ``CLOSE`` — a connection came / went, so a test can wait until a killed
  client's connections are gone before reading the log (no message can arrive after).

``DELAY`` (seconds) is waited before replying to DATA: a slower server keeps the
sender busy long enough for kills to land in the middle of an edition. ``PIPELINING``
(``1``) offers RFC 2920 PIPELINING in the EHLO reply, as Postfix does: the client then
writes MAIL, RCPT and DATA at once, before its hand-over is committed.

The :class:`ServerLog` reader is for the test side.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from smtp_server import ehlo_reply  # tests/ is on the path, as a module or as a script

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class _Log:
    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: str) -> None:
        os.write(self._fd, (line + "\n").encode())
        os.fsync(self._fd)


class _Handler:
    def __init__(self, log: _Log, delay: float, pipelining: bool) -> None:
        self.log = log
        self.delay = delay
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> list[str]:
        session.host_name = hostname
        return ehlo_reply(responses, pipelining=self.pipelining)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        headers = data.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(headers)
        message_id = found.group(1).decode() if found else "-"
        if self.delay:
            await asyncio.sleep(self.delay)
        for rcpt in envelope.rcpt_tos:
            self.log.write(f"MSG {rcpt} {message_id}")
        return "250 2.0.0 OK queued"


class _LoggingSMTP(SMTP):
    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._log = handler.log

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._log.write("OPEN")
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._log.write("CLOSE")


async def _serve(port: int, log_path: Path, delay: float, pipelining: bool) -> None:
    handler = _Handler(_Log(log_path), delay, pipelining)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _LoggingSMTP(handler, hostname="crash.test"), "127.0.0.1", port
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


# --- the test side ---------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    messages: list[tuple[str, str]]  # (rcpt, Message-ID), in arrival order
    opened: int
    closed: int


class ServerLog:
    """Reads the server process's log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Snapshot:
        messages: list[tuple[str, str]] = []
        opened = closed = 0
        text = self.path.read_text() if self.path.exists() else ""
        # Only whole lines: the server may be half-way through writing the last one.
        for line in text.split("\n")[:-1]:
            kind, *rest = line.split(" ")
            if kind == "MSG":
                messages.append((rest[0], rest[1]))
            elif kind == "OPEN":
                opened += 1
            elif kind == "CLOSE":
                closed += 1
        return Snapshot(messages, opened, closed)

    def wait(self, ready: Any, timeout: float = 30.0) -> Snapshot:
        """Poll until ``ready(snapshot)`` is true; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.read()
            if ready(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise TimeoutError(f"server log {self.path}: condition not met in {timeout}s")
            time.sleep(0.005)

    def settled(self, timeout: float = 30.0) -> Snapshot:
        """Every connection closed: nothing more can arrive from a killed client."""
        return self.wait(lambda s: s.opened == s.closed, timeout)


def start_server(
    port: int, log: Path, delay: float, *, pipelining: bool = False
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, __file__, str(port), str(log), str(delay), str(int(pipelining))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until listening (or the process died)
    if line.strip() != "ready":
        process.kill()
        raise RuntimeError(f"the crash-test SMTP server did not start: {line!r}")
    return process


if __name__ == "__main__":
    port_arg, log_arg, *rest = sys.argv[1:]
    delay_arg = float(rest[0]) if rest else 0.0
    pipelining_arg = len(rest) > 1 and rest[1] == "1"
    asyncio.run(_serve(int(port_arg), Path(log_arg), delay_arg, pipelining_arg))
