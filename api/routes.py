"""What the app's routes answer, read from its OpenAPI paths (FastAPI keeps included routers
opaque, so a 405 from the first matching route names only that route's methods)."""

from __future__ import annotations

import re
from functools import cache

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import compile_path

_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@cache
def _path_table(app: FastAPI) -> tuple[tuple[str, re.Pattern[str], frozenset[str]], ...]:
    table = []
    schema = app.openapi() if isinstance(app, FastAPI) else {}
    for template, operations in schema.get("paths", {}).items():
        pattern, _, _ = compile_path(template)
        methods = frozenset(method.upper() for method in operations if method in _METHODS)
        table.append((template, pattern, methods))
    return tuple(table)


def allowed_methods(app: FastAPI, path: str) -> set[str]:
    """The methods some documented route answers at this path."""
    allowed: set[str] = set()
    for _, pattern, methods in _path_table(app):
        if pattern.match(path):
            allowed |= methods
    return allowed


def template_of(app: FastAPI, path: str, *, route_path: str = "") -> str | None:
    """The documented path template of a route (its path below its router's prefix) that
    answered this path."""
    for template, pattern, _ in _path_table(app):
        if template.endswith(route_path) and pattern.match(path):
            return template
    return None


def without_trailing_slash(request: Request) -> str | None:
    """The same request without its trailing slash, as a relative URL, when that path is a
    route of the app; else None."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return None
    stripped = path.rstrip("/")
    if not allowed_methods(request.app, stripped):
        return None
    query = request.url.query
    return f"{stripped}?{query}" if query else stripped
