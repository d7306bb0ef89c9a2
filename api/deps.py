"""Dependencies shared by the routers, as `Annotated` aliases."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from api.clients import ClientAddress
from core.auth.errors import NotAuthenticated
from core.container import Core
from core.operators.service import Operator, operator_of
from core.users.models import Account

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 (a URL, not a secret)

# auto_error=False: a missing token is our own problem+json 401, not FastAPI's default body.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(get_core)]


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Account:
    # The core straight from the app, not as a sub-dependency: each one is solved (and
    # cached) per request, and this dependency runs on every authenticated request.
    if not token:
        raise NotAuthenticated()
    core: Core = request.app.state.core
    return await core.auth.user_from_access_token(token)


CurrentUser = Annotated[Account, Depends(get_current_user)]

# The second security scheme of the operator endpoints: Swagger's Authorize offers both.
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    scheme_name="APIKey",
    description="An operator's API key (`rk_…`), for server-to-server callers.",
    auto_error=False,
)


async def get_viewer(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Account | Operator:
    """Any signed-in user, or an API key (for reads operators may also make)."""
    core: Core = request.app.state.core
    if api_key:
        return await core.operators.operator_of_key(api_key)
    if token:
        return await core.auth.user_from_access_token(token)
    raise NotAuthenticated()


Viewer = Annotated[Account | Operator, Depends(get_viewer)]


async def get_operator(viewer: Viewer, address: ClientAddress) -> Operator:
    """A superuser's bearer token or an API key; a non-superuser's token is a 403. The
    operator carries the client address the audit log records."""
    operator = viewer if isinstance(viewer, Operator) else operator_of(viewer)
    return dataclasses.replace(operator, address=address)


CurrentOperator = Annotated[Operator, Depends(get_operator)]


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int
    cursor: str | None = None


async def get_page(
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 50,
    offset: Annotated[
        int, Query(ge=0, description="Items to skip (older clients; prefer cursor).")
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(max_length=100, description="`next_cursor` of the previous page; wins over offset."),
    ] = None,
) -> Page:
    return Page(limit=limit, offset=offset, cursor=cursor or None)


Pagination = Annotated[Page, Depends(get_page)]


@dataclass(frozen=True, slots=True)
class CursorPage:
    limit: int
    cursor: str | None = None


async def get_cursor_page(
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=100, description="`next_cursor` of the previous page.")
    ] = None,
) -> CursorPage:
    return CursorPage(limit=limit, cursor=cursor or None)


Cursor = Annotated[CursorPage, Depends(get_cursor_page)]
