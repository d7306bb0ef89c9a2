"""Assertions and values the API tests share: problem bodies, UTC timestamps, expiry times."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy import event

from core.infra import clock, db

PROBLEM_JSON = "application/problem+json"
_UTC_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)")


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 body with the contract's stable `code`; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["code"] == code, body
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    return body


def assert_validation_error(response: httpx.Response, field: str | None = None) -> dict[str, Any]:
    """A 422 `validation_error` whose `errors` list names `field` (when given)."""
    body = assert_problem(response, 422, "validation_error")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors
    for error in errors:
        assert set(error) >= {"loc", "msg", "type"}, error
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
        assert isinstance(error["type"], str)
    if field is not None:
        assert any(field in error["loc"] for error in errors), errors
    return body


def assert_utc(value: str) -> dt.datetime:
    """An ISO 8601 timestamp with a UTC offset (`Z` or `+00:00`); returns it parsed."""
    assert isinstance(value, str)
    assert _UTC_TIMESTAMP.fullmatch(value), value
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def in_future(**delta: float) -> dt.datetime:
    return clock.utcnow() + dt.timedelta(**delta)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ahead(**delta: float) -> str:
    """A request timestamp `delta` from now on the service clock, e.g. `ahead(days=7)`."""
    return iso(in_future(**delta))


@contextlib.contextmanager
def sql_statements() -> Iterator[list[str]]:
    """Every SQL statement any app in this process runs inside the block."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = db.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
