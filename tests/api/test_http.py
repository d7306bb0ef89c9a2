"""What every HTTP answer carries, and the answers FastAPI would otherwise get wrong: unreadable
bodies, 405s, trailing slashes, CORS, request ids and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.front import Front
from api.main import create_app
from core.container import Core
from core.infra.settings import HttpSettings, Settings
from tests.api.support import assert_problem, assert_validation_error
from tests.conftest import API


async def test_json_that_is_not_utf8_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/register",
        content=b'{"email": "\xff\xfe@example.com", "password": "12345678"}',
        headers={"content-type": "application/json"},
    )
    body = assert_validation_error(response)
    assert body["errors"][0]["loc"] == ["body"]


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{API}/referral-codes/me")
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}
    response = await client.patch(f"{API}/referral-codes")
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_trailing_slash_redirect_ignores_the_host_header(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"{API}/referral-codes/?email=a%40example.com", headers={"host": "evil.example"}
    )
    assert response.status_code == 307
    assert response.headers["location"] == f"{API}/referral-codes?email=a%40example.com"
    assert "evil" not in response.headers["location"]
    # A path that is no route with or without the slash is a plain 404.
    assert_problem(await client.get(f"{API}/nothing/"), 404, "not_found")
    assert_problem(await client.get("//evil.example/"), 404, "not_found")


async def test_every_answer_says_nosniff(client: httpx.AsyncClient, user) -> None:
    _, headers = await user("ann@example.com")
    for response in (
        await client.get("/health/live"),
        await client.get(f"{API}/referral-codes", params={"email": "x@example.com"}),
        await client.get(f"{API}/users/me", headers=headers),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_answers_to_credentials_are_not_stored(client: httpx.AsyncClient, user) -> None:
    _, headers = await user("ann@example.com")
    me = await client.get(f"{API}/users/me", headers=headers)
    assert me.status_code == 200
    assert me.headers["cache-control"] == "no-store"
    refused = await client.get(f"{API}/users/me", headers={"Authorization": "Bearer junk"})
    assert refused.headers["cache-control"] == "no-store"
    public = await client.get("/health/live")
    assert "cache-control" not in public.headers


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    sent = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert sent.headers["x-request-id"] == "abc-123"
    made = await client.get("/health/live")
    other = await client.get("/health/live")
    assert len(made.headers["x-request-id"]) == 32
    assert made.headers["x-request-id"] != other.headers["x-request-id"]
    # Junk (too long, odd characters) is replaced, never echoed.
    junk = await client.get("/health/live", headers={"X-Request-ID": "<script>" + "a" * 200})
    assert "<" not in junk.headers["x-request-id"]


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    for code in ("AAAA1111", "BBBB2222"):
        await client.get(f"{API}/referral-codes/{code}")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'http_requests_total{method="GET",route="/api/v1/referral-codes/{code}",status="404"}'
        in text
    )
    assert "AAAA1111" not in text  # templates, not paths
    assert "http_request_duration_seconds_bucket" in text
    assert "cache_reads_total" in text


@pytest.fixture
async def cors_client(core: Core, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={"http": HttpSettings(CORS_ORIGINS="https://app.example.com")}
    )
    app = create_app(configured)  # its own core: stopping it leaves the shared one running
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_cors_allows_only_configured_origins(cors_client: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = await cors_client.options(f"{API}/referral-codes", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = await cors_client.options(
        f"{API}/referral-codes", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers


async def test_a_request_past_its_deadline_is_answered_503() -> None:
    """The backstop: a request still running at its deadline gets a 503 to retry, soon after
    the deadline; the other requests, quick ones, are not touched."""

    cleaned_up = asyncio.Event()

    async def stuck(request: Request) -> JSONResponse:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned_up.set()
        return JSONResponse({})

    async def quick(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    front = Front(
        Starlette(routes=[Route("/stuck", stuck), Route("/quick", quick)]), request_timeout=0.3
    )
    transport = httpx.ASGITransport(app=front)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        began = time.monotonic()
        slow, *fast = await asyncio.gather(
            http.get("/stuck"), *(http.get("/quick") for _ in range(5))
        )
        took = time.monotonic() - began
    assert slow.status_code == 503
    assert slow.json()["code"] == "service_unavailable"
    assert slow.headers["retry-after"] == "5"
    assert cleaned_up.is_set()  # the handler was cancelled, its cleanup ran
    assert 0.3 <= took < 5  # at its deadline, long before the handler would have finished
    assert [r.status_code for r in fast] == [200] * 5
    assert not front.deadlines._running  # every request left the watch


async def test_a_cancelled_request_is_not_mistaken_for_a_deadline() -> None:
    async def app(scope, receive, send):
        raise asyncio.CancelledError

    front = Front(app, request_timeout=5)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(asyncio.CancelledError):
        await front(scope, None, None)
