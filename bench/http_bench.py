"""Conditional GET of a feed under load: requests/s and p99 latency for 200 and 304.

Builds a seeded site (``--statements`` statements, one English feed of
``max_entries`` entries), serves it with ``start_http`` on a loopback port in a
child process, and loads it for ``--seconds`` per case:

* 200: plain ``GET /feeds/en.atom`` (identity body; gzip with ``--gzip``);
* 304: the same with ``If-None-Match: <the ETag>``.

Uses ``wrk`` (with a Lua script for latency percentiles) when installed, else an
asyncio load generator of ``--connections`` keep-alive connections (raw HTTP/1.1 over
asyncio streams, so the client costs as little as possible). The server runs in its
own process so that client and server do not share one event loop.

    .venv/bin/python bench/http_bench.py --seconds 5 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CONFIG = """\
[site]
title = "Bench"
url = "https://example.org/"
default_language = "en"
[paths]
templates = "{templates}"
[feeds]
max_entries = 50
[http]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}/"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_site(root: Path, statements: int, port: int) -> Path:
    folder = root / "statements"
    folder.mkdir(parents=True)
    words = " ".join(f"word{i}" for i in range(300))
    for n in range(statements):
        text = f"---\ntitle: Statement {n}\ndate: 2020-01-{1 + n % 28:02d}\n---\n\n{words}\n"
        (folder / f"s{n:05d}.en.md").write_text(text, encoding="utf-8")
    config = root / "statement-feeds.toml"
    config.write_text(
        CONFIG.format(templates=REPO / "src" / "statement_feeds" / "templates", port=port),
        encoding="utf-8",
    )
    return config


def serve(config_path: str, ready: multiprocessing.synchronize.Event) -> None:
    from statement_feeds.clock import system_clock
    from statement_feeds.config import load_config
    from statement_feeds.web.app import start_http

    async def main() -> None:
        handle = await start_http(load_config(Path(config_path)), system_clock)
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await handle.close()

    asyncio.run(main())


# -- the asyncio load generator ------------------------------------------------------------


async def _connection(
    port: int, request: bytes, until: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            if length:
                await reader.readexactly(int(length.group(1)))
            latencies.append(time.perf_counter() - start)
            status = int(head.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _load(
    port: int, headers: str, seconds: float, connections: int
) -> tuple[float, float, dict[int, int]]:
    request = (f"GET /feeds/en.atom HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n").encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    until = time.perf_counter() + seconds
    began = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, request, until, latencies, statuses) for _ in range(connections))
    )
    elapsed = time.perf_counter() - began
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 100 else max(latencies)
    return len(latencies) / elapsed, p99 * 1000, statuses


# -- wrk ---------------------------------------------------------------------------------------

_WRK_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("P99_US %d\\n", latency:percentile(99)))
end
"""


def _wrk(
    port: int, headers: dict[str, str], seconds: float, connections: int
) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA)
    args = ["wrk", "-t2", f"-c{connections}", f"-d{int(max(1, seconds))}s", "-s", script.name]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*args, f"http://127.0.0.1:{port}/feeds/en.atom"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = int(re.search(r"P99_US (\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    return rate, p99


def _etag(port: int, gzip: bool) -> str:
    async def fetch() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        encoding = "gzip" if gzip else "identity"
        writer.write(
            b"GET /feeds/en.atom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Accept-Encoding: {encoding}\r\n\r\n".encode()
        )
        data = await reader.read()
        writer.close()
        match = re.search(rb"(?i)etag: *(\"[^\"]+\")", data)
        assert match, data[:300]
        return match.group(1).decode()

    return asyncio.run(fetch())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--statements", type=int, default=60)
    parser.add_argument("--gzip", action="store_true", help="ask for gzip (both cases)")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio client")
    options = parser.parse_args()

    from statement_feeds.config import load_config
    from statement_feeds.feeds.build import Publisher

    with tempfile.TemporaryDirectory(prefix="sf-http-bench-") as folder:
        port = free_port()
        config_path = make_site(Path(folder), options.statements, port)
        Publisher(load_config(config_path)).build()
        size = (Path(folder) / "public" / "feeds" / "en.atom").stat().st_size
        ready = multiprocessing.get_context("spawn").Event()
        server = multiprocessing.get_context("spawn").Process(
            target=serve, args=(str(config_path), ready), daemon=True
        )
        server.start()
        try:
            if not ready.wait(30):
                raise SystemExit("server did not start")
            run(port, options, size)
        finally:
            server.terminate()
            server.join(5)


def run(port: int, options: argparse.Namespace, size: int) -> None:
    encoding = "gzip" if options.gzip else "identity"
    etag = _etag(port, options.gzip)
    use_wrk = shutil.which("wrk") is not None and not options.no_wrk
    tool = "wrk" if use_wrk else "asyncio client"
    print(
        f"feed {size} bytes, Accept-Encoding {encoding}, {options.connections} connections,"
        f" {options.seconds:g} s per case, loopback, {tool}"
    )
    cases = {
        "200": {"Accept-Encoding": encoding},
        "304": {"Accept-Encoding": encoding, "If-None-Match": etag},
    }
    for name, headers in cases.items():
        if use_wrk:
            rate, p99 = _wrk(port, headers, options.seconds, options.connections)
            note = ""
        else:
            text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            rate, p99, statuses = asyncio.run(
                _load(port, text, options.seconds, options.connections)
            )
            note = f"  statuses {statuses}"
            assert set(statuses) == {int(name)}, statuses
        print(f"{name}: {rate:9.0f} req/s   p99 {p99:7.2f} ms{note}")


if __name__ == "__main__":
    main()
