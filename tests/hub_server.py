"""A WebSub hub for the tests: a real aiohttp server on a loopback port, in the test's
own event loop, that records every request and answers as the test scripts it.

``answers`` is consumed one per request: an HTTP status, or ``STALL`` (the request is
held until the server stops, so the client's timeout is what ends it). When it runs
out, ``default`` answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["STALL", "HubServer", "Ping", "running_hub"]

STALL = "stall"


@dataclass(frozen=True)
class Ping:
    path: str
    content_type: str
    form: dict[str, list[str]]


@dataclass
class HubServer:
    url: str = ""  # http://127.0.0.1:<port>/hub
    answers: list[int | str] = field(default_factory=list)
    default: int | str = 204
    pings: list[Ping] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields: dict[str, list[str]] = {}
        for key, value in form.items():
            fields.setdefault(key, []).append(str(value))
        self.pings.append(Ping(request.path, request.content_type, fields))
        self.arrived.set()
        answer = self.answers.pop(0) if self.answers else self.default
        if answer == STALL:
            await self._release.wait()
            return web.Response(status=204)
        assert isinstance(answer, int)
        return web.Response(status=answer, text="" if answer < 300 else f"status {answer}")

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.pings) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def topics(self) -> list[str]:
        return [p.form["hub.topic"][0] for p in self.pings]


@asynccontextmanager
async def running_hub() -> AsyncIterator[HubServer]:
    hub = HubServer()
    app = web.Application()
    app.router.add_post("/hub", hub.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hub.url = f"http://127.0.0.1:{port}/hub"
    try:
        yield hub
    finally:
        hub._release.set()
        await runner.cleanup()
