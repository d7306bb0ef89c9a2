"""The one place where errors become HTTP: RFC 9457 problem+json with a stable `code`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import routes
from api.clients import client_address
from core.infra import errors as core_errors
from core.infra.db import is_outage

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS_BY_ERROR: list[tuple[type[core_errors.DomainError], int]] = [
    (core_errors.RateLimited, 429),
    (core_errors.InvalidInput, 422),
    (core_errors.Unauthorized, 401),
    (core_errors.Forbidden, 403),
    (core_errors.NotFound, 404),
    (core_errors.Conflict, 409),
    (core_errors.BadRequest, 400),
    (core_errors.Unavailable, 503),
]
_CODE_BY_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def status_of(error: core_errors.DomainError) -> int:
    for error_type, status in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 400


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "value_error")),
        }
        for error in errors
    ]


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, core_errors.DomainError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, core_errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, core_errors.InvalidInput):
        where = "query" if request.method == "GET" else "body"
        loc = [where, exc.field] if exc.field else [where]
        extra["errors"] = [{"loc": loc, "msg": exc.detail, "type": "value_error"}]
    return problem(status, exc.code, exc.detail, headers=headers or None, **extra)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem(
        422,
        "validation_error",
        "The request is not valid; see `errors`.",
        errors=_validation_errors(exc.errors()),
    )


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 400 and exc.__cause__ is not None:
        # FastAPI could not read the body at all (JSON that is not UTF-8, a broken form):
        # as malformed as JSON with a syntax error, which it reports as a 422.
        return problem(
            422,
            "validation_error",
            "The request is not valid; see `errors`.",
            errors=[
                {"loc": ["body"], "msg": "The body could not be read.", "type": "body_invalid"}
            ],
        )
    if status == 405:
        # Every method of every route with this path, not only of the first that matched.
        allowed = routes.allowed_methods(request.app, request.url.path)
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    if status == 404 and (target := routes.without_trailing_slash(request)) is not None:
        # A relative Location: an absolute one would be built from the client's Host header.
        return RedirectResponse(target, status_code=307)
    code = _CODE_BY_STATUS.get(status, "error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    return problem(status, code, detail, headers=headers or None)


def _client(request: Request) -> str:
    try:
        return client_address(request)
    except Exception:  # an app without the front's state (never fail an error's answer)
        return "unknown"


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception(
        "unhandled error on %s %s from %s",
        request.method,
        request.url.path,
        _client(request),
        exc_info=exc,
    )
    return problem(500, "internal_error", "Something went wrong on our side; try again.")


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot be reached is a 503 to retry, not a failure of the request."""
    if not is_outage(exc):
        return await unexpected_error_handler(request, exc)
    log.error(
        "database unavailable on %s %s from %s: %r",
        request.method,
        request.url.path,
        _client(request),
        exc,
    )
    return problem(
        503,
        "service_unavailable",
        "The service is briefly unavailable; try again shortly.",
        headers={"Retry-After": "5"},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(core_errors.DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    # Handled inside the app, so the server does not log an outage as a crash.
    app.add_exception_handler(OSError, database_error_handler)
    app.add_exception_handler(SQLAlchemyError, database_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an endpoint documents."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
