"""Operators, referrers and referrals for the program tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.users.models import User
from tests.api.support import ahead
from tests.conftest import API, PASSWORD
from tests.webhooks.conftest import (  # noqa: F401 (shared fixtures)
    api_key,
    deliverer,
    receiver,
)

From = Callable[[str], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_from(app: FastAPI) -> AsyncIterator[From]:
    """A client whose requests come from this address (as the rate limits see it)."""
    async with AsyncExitStack() as stack:

        async def make(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://testserver")
            )

        yield make


async def sign_in(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await http.post(f"{API}/auth/token", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def referrer(client: httpx.AsyncClient, user: Any) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A user with a live code: {"user", "headers", "code"}."""

    async def make(email: str = "ref@example.com", **fields: Any) -> dict[str, Any]:
        body, headers = await user(email, **fields)
        created = await client.post(
            f"{API}/referral-codes", json={"expires_at": ahead(days=30)}, headers=headers
        )
        assert created.status_code == 201, created.text
        return {"user": body, "headers": headers, "code": created.json()["code"]}

    return make


@pytest.fixture
def join(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Sign up with a code (from `http`, default the plain client); the new user's body."""

    async def make(
        email: str, code: str, http: httpx.AsyncClient | None = None, **fields: Any
    ) -> dict[str, Any]:
        response = await (http or client).post(
            f"{API}/auth/register",
            json={"email": email, "password": PASSWORD, "referral_code": code, **fields},
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make


async def make_superuser(user_id: int) -> None:
    await User.objects.filter(id=user_id).update(is_superuser=True)
