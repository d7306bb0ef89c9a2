"""A scriptable fake HTTP service on 127.0.0.1 (random port), for the real httpx client."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    email: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeService:
    """Answers per email from a script: each call takes the next behaviour; the last repeats."""

    default: str
    scripts: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    slow_seconds: float = 2.0
    url: str = ""
    _runner: web.AppRunner | None = None

    def script(self, email: str, *behaviours: str) -> None:
        self.scripts[email] = list(behaviours)

    def calls_for(self, email: str) -> list[Call]:
        return [call for call in self.calls if call.email == email]

    def reset(self) -> None:
        self.scripts.clear()
        self.calls.clear()
        self.release.set()  # let any handler still waiting finish
        self.release = asyncio.Event()

    def next_behaviour(self, email: str) -> str:
        script = self.scripts.get(email)
        if script:
            return script.pop(0) if len(script) > 1 else script[0]
        # Unscripted (a manual run): `ann+404@example.com` asks for behaviour "404".
        tag = email.partition("@")[0].partition("+")[2]
        return tag if tag in self.behaviours else self.default

    @property
    def behaviours(self) -> frozenset[str]:
        return frozenset()

    async def hang(self, seconds: float | None = None) -> None:
        """Wait until released (or `seconds` pass); a disconnecting client cancels us."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), seconds)

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.add_routes(self.routes())
        # handler_cancellation: a client that gave up (timeout) ends the handler at once.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._runner = runner

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


def json_response(body: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(body, status=status, headers=headers or None)


def garbage() -> web.Response:
    return web.Response(
        text="<html><body>502 Bad Gateway</body>", content_type="text/html", status=200
    )
