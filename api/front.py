"""The outermost layer of every HTTP request: its id, its deadline, its metrics and the headers
every response carries.

One plain ASGI middleware rather than several: each layer costs a call and a closure per
request, and these four all wrap the same `send`.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import routes
from api.errors import problem
from core.infra import logs, metrics
from core.infra.deadlines import Deadlines

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")
_CREDENTIALS = (b"authorization", b"x-api-key")


class Front:
    def __init__(self, app: ASGIApp, *, request_timeout: float) -> None:
        self.app = app
        self.request_timeout = request_timeout
        # A backstop behind the bounds on every wait (database, Redis, outside services):
        # a request is cut within a quarter second after its timeout, not on a precise clock.
        self.deadlines = Deadlines(request_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        credentials = False
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
                request_id = value
            elif name in _CREDENTIALS:
                credentials = True
        if not request_id:
            request_id = os.urandom(16).hex().encode()
        token = logs.request_id.set(request_id.decode())
        status = 500
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append(_NOSNIFF)
                headers.append((b"x-request-id", request_id))
                # Whatever answers a request that carried credentials is that caller's own.
                if credentials and not any(name == b"cache-control" for name, _ in headers):
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        begun = time.perf_counter()
        task = asyncio.current_task()
        assert task is not None  # ASGI apps run in a task
        deadlines = self.deadlines
        deadlines.enter(task)
        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            if not deadlines.expired(task):
                raise  # the client left, or the server stops: not ours to answer
            task.uncancel()
            if started:  # half an answer is out: all that is left is to end the connection
                raise TimeoutError("request deadline passed mid-response") from None
            response = problem(
                503,
                "service_unavailable",
                "The service is briefly unavailable; try again shortly.",
                headers={"Retry-After": "5"},
            )
            await response(scope, receive, send_with_headers)
        finally:
            deadlines.leave(task)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            count, latency = _series(method, _route_label(scope), status)
            count.inc()
            latency.observe(time.perf_counter() - begun)
            logs.request_id.reset(token)


_labels: dict[int, str] = {}
# Methods are labels: what a client invents must not add series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The metric children of one (method, route, status): looked up once, not per request
    (labels() takes a lock and builds a key each time)."""
    found = _children.get((method, route, status))
    if found is None:
        found = (
            metrics.http_requests.labels(method, route, str(status)),
            metrics.http_latency.labels(method, route),
        )
        _children[(method, route, status)] = found
    return found


def _route_label(scope: Scope) -> str:
    """The route template that answered (bounded, unlike paths), or "unmatched"."""
    route: Any = scope.get("route")
    if route is None:
        return "unmatched"
    label = _labels.get(id(route))
    if label is None:
        # FastAPI's route knows its path only below its router's prefix: the app's OpenAPI
        # paths give the whole template; asked once per route object.
        app, route_path = scope.get("app"), getattr(route, "path", "")
        label = routes.template_of(app, scope["path"], route_path=route_path) if app else None
        label = label or route_path or "unmatched"
        _labels[id(route)] = label
    return label
