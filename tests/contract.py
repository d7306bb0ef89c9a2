"""Every JSON answer has exactly the keys of its route's response model, nested models included.

Hot reads answer with `json_of` (the core's values serialised without the model, for speed),
so nothing else would notice a field that leaks out or goes missing. `ContractCheck` wraps the
test app: each 2xx JSON answer of a route with a `response_model` is compared with it, and a
mismatch fails the request's test.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def mismatches(value: Any, annotation: Any, where: str = "") -> list[str]:
    """What in `value` does not match the keys `annotation` declares (empty: it matches)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return mismatches(value, typing.get_args(annotation)[0], where)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if value is None:
            return []
        found = [mismatches(value, option, where) for option in options]
        return [] if any(not problems for problems in found) else found[0]
    if origin in (list, tuple, typing.Sequence) and isinstance(value, list):
        (item, *_) = typing.get_args(annotation) or (Any,)
        return [
            p for n, entry in enumerate(value) for p in mismatches(entry, item, f"{where}[{n}]")
        ]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return [f"{where or '.'}: not an object"]
        fields = {(f.alias or name): f.annotation for name, f in annotation.model_fields.items()}
        problems = [
            f"{where}.{key}: not in {annotation.__name__}" for key in value if key not in fields
        ]
        problems += [f"{where}.{key}: missing" for key in fields if key not in value]
        for key, field in fields.items():
            if key in value:
                problems += mismatches(value[key], field, f"{where}.{key}")
        return problems
    return []


class ContractCheck:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        json_body = False
        body = b""

        async def sending(message: Message) -> None:
            nonlocal status, json_body, body
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers") or [])
                json_body = headers.get(b"content-type", b"").startswith(b"application/json")
            elif message["type"] == "http.response.body":
                body += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, sending)
        route = scope.get("route")
        model = getattr(route, "response_model", None)
        if 200 <= status < 300 and json_body and body and model is not None:
            problems = mismatches(json.loads(body), model)
            assert not problems, f"{scope['method']} {scope['path']}: {problems}"
