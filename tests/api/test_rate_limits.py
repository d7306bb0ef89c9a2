"""Rate limits over HTTP: login (per address and per account), registration, public lookups."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from core.container import build_core
from core.infra import clock
from core.infra.settings import Settings
from tests.api.support import assert_problem, sql_statements
from tests.conftest import API, PASSWORD, REDIS_URL

LOOKUP = f"{API}/referral-codes"
AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]

# Every test here uses the session `core` fixture too: the database is connected and emptied
# (Redis flushed) after each test.
pytestmark = pytest.mark.usefixtures("core")


@pytest.fixture
def limited_app(settings: Settings) -> AppFactory:
    """An app with rate limiting on; keyword arguments override RATE_LIMIT_* settings."""

    @asynccontextmanager
    async def build(redis_url: str | None = REDIS_URL, **limits: Any) -> AsyncIterator[FastAPI]:
        from api.main import create_app

        proxies = limits.pop("trusted_proxies", [])
        rate_limit = settings.rate_limit.model_copy(update={"enabled": True, **limits})
        http = settings.http.model_copy(update={"trusted_proxies": proxies})
        # A loaded test machine must not pass for a Redis outage (that has its own test).
        cache = settings.cache.model_copy(update={"redis_timeout_seconds": 5.0})
        custom = settings.model_copy(
            update={"rate_limit": rate_limit, "http": http, "cache": cache, "redis_url": redis_url}
        )
        application = create_app(custom, core=build_core(custom))
        async with LifespanManager(application) as manager:
            yield manager.app  # type: ignore[misc]

    return build


def client_at(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def assert_limited(response: httpx.Response, retry_after: int | None = None) -> int:
    """A 429 problem; `retry_after` is the wait from the first counted request (time has
    passed since, a few seconds on a slow machine)."""
    assert_problem(response, 429, "rate_limited")
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1
    if retry_after is not None:
        assert max(1, retry_after - 5) <= seconds <= retry_after
    return seconds


async def lookups(client: httpx.AsyncClient, times: int, **kwargs: Any) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(
                client.get(LOOKUP, params={"email": "nobody@example.com"}, **kwargs)
                for _ in range(times)
            )
        )
    )


async def test_lookup_limit_holds_under_concurrency(limited_app: AppFactory) -> None:
    async with limited_app(lookup="5/60") as app, client_at(app, "203.0.113.10") as client:
        responses = await lookups(client, 15)
        statuses = [r.status_code for r in responses]
        assert statuses.count(404) == 5
        assert statuses.count(429) == 10
        for response in responses:
            if response.status_code == 429:
                assert_limited(response, retry_after=12)  # 5 per 60 s: one every 12 s

        # Both public lookups share the limit.
        response = await client.get(f"{LOOKUP}/SOMECODE1")
        assert_limited(response)

        async with client_at(app, "203.0.113.11") as other:
            assert [r.status_code for r in await lookups(other, 5)] == [404] * 5
            assert (await other.get(f"{LOOKUP}/SOMECODE1")).status_code == 429


async def test_limit_comes_back_after_the_window(limited_app: AppFactory) -> None:
    async with limited_app(lookup="2/10") as app, client_at(app, "203.0.113.12") as client:
        assert [r.status_code for r in await lookups(client, 2)] == [404, 404]
        assert_limited((await lookups(client, 1))[0], retry_after=5)
        with clock.shift(dt.timedelta(seconds=5)):
            assert sorted(r.status_code for r in await lookups(client, 2)) == [404, 429]
        with clock.shift(dt.timedelta(seconds=20)):
            assert [r.status_code for r in await lookups(client, 2)] == [404, 404]


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(limited_app: AppFactory) -> None:
    async with limited_app(lookup="3/60") as app, client_at(app, "203.0.113.13") as client:
        responses = [
            await client.get(
                LOOKUP,
                params={"email": "nobody@example.com"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            )
            for n in range(5)
        ]
        assert [r.status_code for r in responses] == [404] * 3 + [429] * 2


async def test_forwarded_for_is_honoured_from_a_trusted_proxy(limited_app: AppFactory) -> None:
    settings = {"lookup": "2/60", "trusted_proxies": ["10.0.0.0/8"]}
    async with limited_app(**settings) as app, client_at(app, "10.0.0.1") as proxy:

        async def status(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            return (await lookups(proxy, 1, headers=headers))[0].status_code

        assert await status("198.51.100.1") == 404
        # Through a second trusted proxy: still the same client.
        assert await status("198.51.100.1, 10.2.3.4") == 404
        assert await status("198.51.100.1") == 429
        # What the client wrote left of its real address changes nothing.
        assert await status("192.0.2.99, 198.51.100.1") == 429
        # Another client behind the proxy has its own allowance.
        assert await status("198.51.100.2") == 404
        # No header from a trusted proxy: the proxy itself is the client.
        assert sorted(r.status_code for r in await lookups(proxy, 3)) == [404, 404, 429]

    async with limited_app(**settings) as app, client_at(app, "203.0.113.14") as stranger:
        # Outside the trusted range the header is ignored: these all count for the peer.
        for n, expected in enumerate([404, 404, 429]):
            headers = {"X-Forwarded-For": f"198.51.100.{n + 10}"}
            assert (await lookups(stranger, 1, headers=headers))[0].status_code == expected


async def test_ipv6_clients_count_per_64(limited_app: AppFactory) -> None:
    async with limited_app(lookup="2/60") as app:
        async with (
            client_at(app, "2001:db8:1:1::1") as one,
            client_at(app, "2001:db8:1:1::2") as two,
        ):
            assert [r.status_code for r in await lookups(one, 2)] == [404, 404]
            assert_limited((await lookups(two, 1))[0])
        async with client_at(app, "2001:db8:1:2::1") as neighbour:
            assert (await lookups(neighbour, 1))[0].status_code == 404


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/auth/token", data={"username": email, "password": password})


async def test_login_limit_per_account_holds_across_addresses(
    limited_app: AppFactory, register: Any
) -> None:
    await register("ann@example.com")
    await register("bob@example.com")
    async with limited_app(login="100/60", login_account="3/300") as app:
        for n in range(3):
            async with client_at(app, f"198.51.100.{n}") as client:
                response = await login(client, "ann@example.com", "wrong password")
                assert_problem(response, 401, "invalid_credentials")

        async with client_at(app, "198.51.100.50") as client:
            # Even the right password, from a fresh address, with the email spelled otherwise.
            response = await login(client, " ANN@example.com", PASSWORD)
            assert_limited(response, retry_after=100)
            assert (await login(client, "bob@example.com", PASSWORD)).status_code == 200

            with clock.shift(dt.timedelta(seconds=100)):
                assert (await login(client, "ann@example.com", PASSWORD)).status_code == 200


async def test_login_limit_per_address(limited_app: AppFactory, register: Any) -> None:
    await register("ann@example.com")
    async with limited_app(login="3/60", login_account="100/300") as app:
        async with client_at(app, "198.51.100.60") as client:
            statuses = [
                (await login(client, f"user{n}@example.com", "wrong password")).status_code
                for n in range(3)
            ]
            assert statuses == [401, 401, 401]
            assert_limited(await login(client, "ann@example.com", PASSWORD), retry_after=20)
        async with client_at(app, "198.51.100.61") as client:
            assert (await login(client, "ann@example.com", PASSWORD)).status_code == 200


async def test_concurrent_login_attempts_hold_the_account_limit(
    limited_app: AppFactory, register: Any
) -> None:
    await register("ann@example.com")
    async with limited_app(login="100/60", login_account="3/300") as app:
        clients = [client_at(app, f"198.51.100.{70 + n}") for n in range(8)]
        try:
            responses = await asyncio.gather(
                *(login(client, "ann@example.com", "wrong password") for client in clients)
            )
        finally:
            for client in clients:
                await client.aclose()
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [401] * 3 + [429] * 5


async def test_a_successful_login_clears_the_account_count(
    limited_app: AppFactory, register: Any
) -> None:
    await register("ann@example.com")
    async with (
        limited_app(login="100/60", login_account="3/300") as app,
        client_at(app, "198.51.100.80") as client,
    ):
        for _ in range(3):  # six attempts, never more than two failures in a row
            assert (await login(client, "ann@example.com", "wrong")).status_code == 401
            assert (await login(client, "ann@example.com", PASSWORD)).status_code == 200


async def test_registration_limit_per_address(limited_app: AppFactory) -> None:
    async with limited_app(registration="2/3600") as app:
        async with client_at(app, "198.51.100.90") as client:

            async def register(email: str) -> httpx.Response:
                body = {"email": email, "password": PASSWORD}
                return await client.post(f"{API}/auth/register", json=body)

            assert (await register("one@example.com")).status_code == 201
            assert (await register("two@example.com")).status_code == 201
            assert_limited(await register("three@example.com"), retry_after=1800)
        async with client_at(app, "198.51.100.91") as other:
            body = {"email": "three@example.com", "password": PASSWORD}
            assert (await other.post(f"{API}/auth/register", json=body)).status_code == 201


async def test_disabled_never_limits(client: httpx.AsyncClient, core: Any) -> None:
    assert not core.limiter.enabled
    statuses = {r.status_code for r in await lookups(client, 50)}
    assert statuses == {404}
    for _ in range(10):
        response = await login(client, "nobody@example.com", "wrong password")
        assert response.status_code == 401


async def test_redis_down_still_limits(limited_app: AppFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with (
        limited_app(redis_url=f"redis://127.0.0.1:{port}/0", lookup="3/60") as app,
        client_at(app, "203.0.113.20") as client,
    ):
        statuses = sorted(r.status_code for r in await lookups(client, 6))
        assert statuses == [404] * 3 + [429] * 3


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (make test-services)")
async def test_api_processes_share_counts_through_redis(limited_app: AppFactory) -> None:
    async with (
        limited_app(lookup="4/60") as first,
        limited_app(lookup="4/60") as second,
        client_at(first, "203.0.113.30") as a,
        client_at(second, "203.0.113.30") as b,
    ):
        responses = await asyncio.gather(lookups(a, 3), lookups(b, 3))
        statuses = sorted(r.status_code for batch in responses for r in batch)
        assert statuses == [404] * 4 + [429] * 2


async def test_cached_lookups_are_limited_and_counted_once(limited_app: AppFactory) -> None:
    """Cache hits are served before routing; they count like any lookup, and a miss that
    falls through to the route is not counted twice."""
    async with limited_app(lookup="4/60") as app, client_at(app, "203.0.113.40") as client:
        await client.post(
            f"{API}/auth/register", json={"email": "hot@example.com", "password": PASSWORD}
        )
        token = await client.post(
            f"{API}/auth/token", data={"username": "hot@example.com", "password": PASSWORD}
        )
        expires = (clock.utcnow() + dt.timedelta(days=1)).isoformat()
        created = await client.post(
            f"{API}/referral-codes",
            json={"expires_at": expires},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert created.status_code == 201
        statuses = []
        first = await client.get(LOOKUP, params={"email": "hot@example.com"})  # fills the cache
        with sql_statements() as statements:
            for _ in range(5):
                response = await client.get(LOOKUP, params={"email": "hot@example.com"})
                statuses.append(response.status_code)
        assert [first.status_code, *statuses] == [200, 200, 200, 200, 429, 429]
        assert statements == []  # hits and refusals alike: the limit and the cache only
        assert response.status_code == 429
        assert_limited(response)


async def test_a_stranger_guessing_from_one_address_cannot_lock_the_owner_out(
    limited_app: AppFactory, register: Any
) -> None:
    await register("ann@example.com")
    async with limited_app(login="100/60", login_account_address="5/300") as app:
        async with client_at(app, "198.51.100.100") as stranger:
            for _ in range(5):
                assert (await login(stranger, "ann@example.com", "guess")).status_code == 401
            assert_limited(await login(stranger, "ann@example.com", "guess"), retry_after=60)
            with clock.shift(dt.timedelta(seconds=60)):  # one attempt a minute, forever
                assert (await login(stranger, "ann@example.com", "guess")).status_code == 401
                assert_limited(await login(stranger, "ann@example.com", "guess"))
        async with client_at(app, "203.0.113.7") as owner:
            assert (await login(owner, "ann@example.com", PASSWORD)).status_code == 200


async def test_guessing_from_many_addresses_meets_the_account_ceiling(
    limited_app: AppFactory, register: Any
) -> None:
    await register("ann@example.com")
    async with limited_app(login="100/60", login_account="20/3600") as app:
        for n in range(20):
            async with client_at(app, f"10.1.{n}.1") as guesser:
                assert (await login(guesser, "ann@example.com", "guess")).status_code == 401
        async with client_at(app, "10.2.0.1") as another:
            assert_limited(await login(another, "ann@example.com", "guess"))


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"{not json", "application/json"), (b"\xff\xfe", "application/json"), (b"[]", None)],
)
async def test_malformed_registrations_count_too(
    limited_app: AppFactory, content: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with limited_app(registration="2/3600") as app, client_at(app, "198.51.100.9") as c:
        for _ in range(2):
            response = await c.post(f"{API}/auth/register", content=content, headers=headers)
            assert response.status_code == 422
        body = {"email": "late@example.com", "password": PASSWORD}
        assert_limited(await c.post(f"{API}/auth/register", json=body))


async def test_malformed_logins_count_against_the_address(limited_app: AppFactory) -> None:
    async with limited_app(login="2/60") as app, client_at(app, "198.51.100.8") as client:
        for _ in range(2):
            response = await client.post(f"{API}/auth/token", content=b"\xff", headers={})
            assert response.status_code == 422
        assert_limited(await login(client, "ann@example.com", PASSWORD))


async def test_the_landing_page_and_its_qr_are_lookups_limited_per_address(
    limited_app: AppFactory,
) -> None:
    """Probing codes through the page is a lookup like any other: it shares their limit."""
    async with limited_app(lookup="4/60") as app, client_at(app, "203.0.113.40") as client:
        answers = [
            (await client.get("/r/NoSuchCode1")).status_code,
            (await client.get("/r/NoSuchCode2/qr.svg")).status_code,
            (await lookups(client, 1))[0].status_code,
            (await client.get("/r/NoSuchCode3")).status_code,
        ]
        assert answers == [404, 404, 404, 404]
        for path in ("/r/NoSuchCode4", "/r/NoSuchCode5/qr.svg"):
            assert_limited(await client.get(path))
        assert_limited((await lookups(client, 1))[0])
    async with limited_app(lookup="4/60") as app, client_at(app, "203.0.113.41") as other:
        assert (await other.get("/r/NoSuchCode6")).status_code == 404  # its own allowance
