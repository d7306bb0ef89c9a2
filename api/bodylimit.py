"""Refuse request bodies over a limit with a problem+json 413, without reading them first."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem

DETAIL = "The request body is too large."


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await problem(413, "payload_too_large", DETAIL)(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives; the route's
            # body reading re-raises HTTPException, so the one error handler answers.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, DETAIL)
            return message

        await self.app(scope, limited, send)
