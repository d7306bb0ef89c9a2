"""Request bodies over the limit are refused with a problem+json 413, before being read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from api.main import MAX_BODY_BYTES
from tests.api.support import assert_problem
from tests.conftest import API


async def test_a_declared_oversized_body_is_refused(client: httpx.AsyncClient) -> None:
    body = b'{"email": "a@example.com", "password": "' + b"p" * MAX_BODY_BYTES + b'"}'
    response = await client.post(
        f"{API}/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_a_chunked_oversized_body_is_refused_as_it_arrives(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(4 * MAX_BODY_BYTES // 1024):
            sent += 1024
            yield b"x" * 1024

    form = "application/x-www-form-urlencoded"
    for path, kind in (
        ("/auth/register", "application/json"),
        ("/auth/token", form),
        ("/auth/refresh", "application/json"),
    ):
        response = await client.post(
            f"{API}{path}", content=chunks(), headers={"content-type": kind}
        )
        assert_problem(response, 413, "payload_too_large")
    assert sent < 4 * MAX_BODY_BYTES  # refused before the whole body was read


async def test_an_ordinary_body_is_unaffected(client: httpx.AsyncClient, core: object) -> None:
    response = await client.post(
        f"{API}/auth/register",
        json={"email": "ann@example.com", "password": "correct horse battery"},
    )
    assert response.status_code == 201
