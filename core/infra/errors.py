"""Domain errors. Each carries the stable `code` of the HTTP contract; the fronts map them."""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """Base of every error the core raises on purpose."""

    code: ClassVar[str] = "error"
    message: ClassVar[str] = "The request could not be completed."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.message
        super().__init__(self.detail)


class NotFound(DomainError):
    code = "not_found"
    message = "Not found."


class Conflict(DomainError):
    code = "conflict"
    message = "Conflict."


class BadRequest(DomainError):
    code = "bad_request"
    message = "Bad request."


class Unauthorized(DomainError):
    code = "not_authenticated"
    message = "Not authenticated."


class Forbidden(DomainError):
    code = "forbidden"
    message = "You may not do this."


class InvalidInput(DomainError):
    """Input that passes the schema but breaks a domain rule (an API 422)."""

    code = "validation_error"
    message = "The input is not valid."

    def __init__(self, detail: str | None = None, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(detail)


class Unavailable(DomainError):
    code = "unavailable"
    message = "The service is not available."


class RateLimited(DomainError):
    code = "rate_limited"
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(detail)
