"""A webhook receiver on 127.0.0.1 that verifies every delivery with `standardwebhooks`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    # Status codes to answer, in turn; then 200. A callable decides per request.
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event | None = None  # when set to an unset event, answers wait for it

    async def start(self, path: str = "/hook") -> str:
        app = web.Application()
        app.router.add_post(path, self._handle)
        app.router.add_post("/redirect", self._redirect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}{path}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        status = self.answers.pop(0) if self.answers else 200
        self.received.append(Received(headers, body, self.verify(body, headers), status))
        self._arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=status, text="x" * 10_000)  # more than is ever read

    async def _redirect(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read(), False, 307))
        raise web.HTTPTemporaryRedirect(self.url)

    async def wait_for(self, check: Callable[[list[Received]], bool], within: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not check(self.received):
            if loop.time() > deadline:
                raise AssertionError(f"receiver got {len(self.received)}: {self.received!r}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), 0.1)
