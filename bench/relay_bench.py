"""A relay some milliseconds away: messages per second with PIPELINING and without.

    .venv/bin/python bench/relay_bench.py                 # 5 ms each way, 2,000 messages
    .venv/bin/python bench/relay_bench.py --delay 0.01 --messages 1000 --rounds 3

Postfix's ``smtp-sink`` twice on loopback: as it is (it offers PIPELINING) and with
``-p`` (it does not). In front of each, a proxy in this process holds every chunk of
bytes ``--delay`` seconds in each direction (a round trip of twice that), as a relay in
another data centre would. ``SmtpMessenger`` (``smtp.concurrency = 4``) sends the same
``--messages`` messages of ~17 kB (the edition benchmark's size) through each, rounds
interleaved; the figure is the ratio of the two rates in the same run, so the machine's
speed cancels out. Without PIPELINING a message costs four round trips (MAIL, RCPT,
DATA, the data); with it, two (MAIL+RCPT+DATA, the data).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_bench import find_tool, free_port
from statement_feeds.config import SmtpConfig
from statement_feeds.digests.mailer import SmtpMessenger

BODY = b"".join(b"Line %05d of a statement, as long as a line of quoted-printable.\r\n" % i
                for i in range(250))  # fmt: skip
MESSAGE = b"From: s@example.org\r\nTo: r@example.org\r\nSubject: bench\r\n\r\n" + BODY


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy bytes, each chunk ``delay`` seconds late, in order."""
    loop = asyncio.get_running_loop()
    try:
        while chunk := await reader.read(65536):
            loop.call_later(delay, writer.write, chunk)
    finally:
        await asyncio.sleep(delay)
        writer.close()


async def proxy(listen: int, upstream: int, delay: float) -> asyncio.Server:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pump(reader, up_writer, delay), pump(up_reader, writer, delay))

    return await asyncio.start_server(client, "127.0.0.1", listen)


async def send(port: int, count: int) -> float:
    config = SmtpConfig(host="127.0.0.1", port=port, security="none", concurrency=4, timeout=30)
    messenger = SmtpMessenger(config, local_hostname="bench.test")
    started = time.perf_counter()
    await asyncio.gather(
        *(messenger.send("s@example.org", f"r{i}@example.org", MESSAGE) for i in range(count))
    )
    await messenger.close()
    return count / (time.perf_counter() - started)


def sink(tool: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    command = [tool, *options, *(["-u", "nobody"] if os.geteuid() == 0 else [])]
    return subprocess.Popen([*command, f"127.0.0.1:{port}", "1000"])


async def main(args: argparse.Namespace) -> None:
    tool = find_tool("smtp-sink")
    if not tool:
        raise SystemExit("smtp-sink not found: scripts/bench-scale.sh installs postfix")
    ports = {name: (free_port(), free_port()) for name in ("pipelining", "plain")}
    sinks = [
        sink(tool, ports["pipelining"][1]),
        sink(tool, ports["plain"][1], "-p"),  # -p: PIPELINING not offered
    ]
    servers = []
    try:
        await asyncio.sleep(0.5)
        for front, back in ports.values():
            servers.append(await proxy(front, back, args.delay))
        print(
            f"{args.messages:,} messages of {len(MESSAGE):,} bytes, 4 connections, "
            f"{args.delay * 1e3:.1f} ms each way ({2 * args.delay * 1e3:.1f} ms round trip)"
        )
        rates: dict[str, list[float]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, (front, _) in ports.items():
                rates[name].append(await send(front, args.messages))
                print(f"  {name}: {rates[name][-1]:,.1f} msg/s")
        with_, without = median(rates["pipelining"]), median(rates["plain"])
        print(
            f"median: PIPELINING {with_:,.1f} msg/s, without {without:,.1f} msg/s: "
            f"{with_ / without:.2f}x (four round trips a message against two: at most 2x)"
        )
    finally:
        await asyncio.sleep(0.5)  # the proxied connections wind down after QUIT
        for server in servers:
            server.close()
        for process in sinks:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--delay", type=float, default=0.005, help="seconds each way")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
