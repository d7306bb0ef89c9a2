"""The referral-code cache seen through the API: hits run no SQL, every change is seen at once
by another API process sharing the Redis, and Redis dead, hung, slow or flushed costs neither
a wrong answer nor a slow one.

The tests that need Redis start their own redis-server (and a proxy they can cut), so they run
the same under `make test` and `make test-services`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from api.main import create_app
from core import container
from core.container import Core, build_core
from core.infra import clock, security
from core.infra.cache import TOMBSTONE, CodeCache, MemoryCache, RedisCache
from core.infra.settings import Settings
from core.referrals.views import code_key
from tests.api.support import sql_statements
from tests.conftest import API, PASSWORD
from tests.redis_server import Proxy, RedisServer

PAUSE = 0.2  # RedisCache's pause after an error, short so recovery is quick to watch


# -- harness -------------------------------------------------------------------------------


@dataclass
class Instance:
    """One API process: its own Core (and cache client) and app, on the shared database."""

    http: httpx.AsyncClient
    core: Core

    async def request(
        self, method: str, url: str, *, waits: int = 1, **kwargs: Any
    ) -> httpx.Response:
        """A request that may wait for Redis at most once (one call, bounded by its timeout),
        however Redis misbehaves: counted, not timed, so a loaded machine cannot fail it."""
        waits_before = self.redis_waits
        response = await self.http.request(method, url, **kwargs)
        assert response.status_code < 500, response.text
        assert self.redis_waits - waits_before <= waits, f"{method} {url} waited on Redis twice"
        return response

    @property
    def redis_waits(self) -> int:
        """Redis calls of this process that failed or timed out so far."""
        cache = self.core.cache
        return cache.failures if isinstance(cache, RedisCache) else 0

    async def by_email(self, email: str) -> httpx.Response:
        return await self.request("GET", f"{API}/referral-codes", params={"email": email})

    async def by_code(self, code: str) -> httpx.Response:
        return await self.request("GET", f"{API}/referral-codes/{code}")

    async def sign_up(self, email: str, **fields: Any) -> httpx.Response:
        body = {"email": email, "password": PASSWORD, **fields}
        return await self.request("POST", f"{API}/auth/register", json=body)

    async def owner(self, email: str, **fields: Any) -> dict[str, str]:
        """Register a referrer; returns their auth headers."""
        response = await self.sign_up(email, **fields)
        assert response.status_code == 201, response.text
        return await self.headers(response.json()["id"])

    async def headers(self, user_id: int) -> dict[str, str]:
        # Tokens straight from the core: password checks are not what these tests time.
        tokens = await self.core.auth.issue_tokens(user_id=user_id)
        return {"Authorization": f"Bearer {tokens.access_token}"}

    async def create_code(self, headers: dict[str, str], **fields: Any) -> httpx.Response:
        expires_at = clock.utcnow() + dt.timedelta(days=7)
        body = {"expires_at": expires_at.isoformat(), **fields}
        return await self.request("POST", f"{API}/referral-codes", json=body, headers=headers)

    async def new_code(self, headers: dict[str, str], **fields: Any) -> str:
        response = await self.create_code(headers, **fields)
        assert response.status_code == 201, response.text
        return str(response.json()["code"])

    async def delete_code(self, headers: dict[str, str]) -> httpx.Response:
        return await self.request("DELETE", f"{API}/referral-codes/me", headers=headers)

    @property
    def redis(self) -> Redis:
        assert isinstance(self.core.cache, RedisCache)
        return self.core.cache.client

    async def cache_status(self) -> str:
        # Its own ping, and perhaps the background replay of an invalidation an outage held
        # back: the count is the process's, not the request's.
        response = await self.request("GET", "/health/ready", waits=2)
        assert response.status_code == 200, response.text
        assert response.json()["database"] == "ok"
        return str(response.json()["cache"])

    async def cached(self, email: str, code: str) -> None:
        """Look the code up both ways until both answers come from the cache, SQL-free."""
        deadline = time.monotonic() + 20 * PAUSE
        while True:
            with sql_statements() as statements:
                by_email, by_code = await self.by_email(email), await self.by_code(code)
            assert by_email.status_code == 200, by_email.text
            assert by_email.json()["code"] == code
            assert by_code.status_code == 200, by_code.text
            if not statements:
                return
            assert time.monotonic() < deadline, f"never served from the cache: {statements}"
            await asyncio.sleep(PAUSE / 4)


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 takes most of a second here, which would drown the timings these tests assert."""

    async def hash_password(password: str) -> str:
        return "not-a-real-hash"

    monkeypatch.setattr(security, "hash_password", hash_password)


@pytest.fixture
def fast_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cores built in this test pause after a Redis error for PAUSE, not a whole second."""

    def build_cache(redis_url: str | None, *, timeout: float) -> CodeCache:
        if redis_url is None:
            return MemoryCache()
        return RedisCache(redis_url, timeout=timeout, pause_after_error=PAUSE)

    monkeypatch.setattr(container, "build_cache", build_cache)


@pytest.fixture
def instance(
    core: Core, settings: Settings, fast_recovery: None
) -> Callable[[str], contextlib.AbstractAsyncContextManager[Instance]]:
    """Start another API process on `redis_url` (sharing the session's database)."""

    @contextlib.asynccontextmanager
    async def start(redis_url: str) -> AsyncIterator[Instance]:
        own = build_core(settings.model_copy(update={"redis_url": redis_url}))
        app = create_app(own.settings, core=own)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield Instance(http=http, core=own)

    return start


@pytest.fixture
async def pair(instance: Any, own_redis: RedisServer) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two API processes sharing one Redis."""
    async with instance(own_redis.url) as a, instance(own_redis.url) as b:
        yield a, b


@pytest.fixture
async def proxied_pair(instance: Any, proxy: Proxy) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two API processes sharing one Redis behind a proxy the test can cut, hang or slow."""
    async with instance(proxy.url) as a, instance(proxy.url) as b:
        yield a, b


# -- hits need no database -----------------------------------------------------------------


async def test_cache_hits_run_no_sql(client: httpx.AsyncClient, core: Core):
    """The default cache of the run (in-process, or the test Redis under test-services)."""
    app = Instance(http=client, core=core)
    headers = await app.owner("ann@example.com", full_name="Ann")
    code = await app.new_code(headers)

    with sql_statements() as first:
        by_email = await app.by_email("ann@example.com")
        by_code = await app.by_code(code)
    assert first, "the query counter saw the misses"
    with sql_statements() as second:
        again_by_email = await app.by_email("ann@example.com")
        again_by_code = await app.by_code(code)
    assert second == []
    assert again_by_email.status_code == by_email.status_code == 200
    assert (
        again_by_email.json()
        == by_email.json()
        == {
            "code": code,
            "expires_at": by_email.json()["expires_at"],
            "campaign": "default",
        }
    )
    assert again_by_code.status_code == 200
    assert again_by_code.json() == by_code.json()
    assert again_by_code.json()["referrer"]["full_name"] == "Ann"
    assert again_by_code.headers["content-type"] == "application/json"


async def test_an_email_lookup_in_another_case_is_answered_right(client, core):
    app = Instance(http=client, core=core)
    code = await app.new_code(await app.owner("bob@example.com"))
    for _ in range(2):
        response = await app.by_email("Bob@Example.COM")
        assert response.status_code == 200
        assert response.json()["code"] == code


# -- invalidation across processes ---------------------------------------------------------


async def test_a_new_code_is_seen_at_once_by_the_other_process(pair):
    a, b = pair
    headers = await b.owner("ann@example.com")
    assert (await a.by_email("ann@example.com")).status_code == 404
    code = await b.new_code(headers)
    assert (await a.by_email("ann@example.com")).json()["code"] == code
    await a.cached("ann@example.com", code)


async def test_a_delete_and_a_replacement_are_seen_at_once_by_the_other_process(pair):
    a, b = pair
    headers = await b.owner("ann@example.com")
    old = await b.new_code(headers)
    await a.cached("ann@example.com", old)

    assert (await b.delete_code(headers)).status_code == 204
    assert (await a.by_email("ann@example.com")).status_code == 404
    assert (await a.by_code(old)).status_code == 404
    refused = await a.sign_up("cat@example.com", referral_code=old)
    assert refused.json()["code"] == "referral_code_expired"

    new = await b.new_code(headers)
    assert (await a.by_email("ann@example.com")).json()["code"] == new
    assert (await a.by_code(old)).status_code == 404
    await a.cached("ann@example.com", new)


async def test_the_use_that_exhausts_a_code_is_seen_at_once_by_the_other_process(pair):
    a, b = pair
    code = await b.new_code(await b.owner("ann@example.com"), max_uses=1)
    await a.cached("ann@example.com", code)

    joined = await b.sign_up("cat@example.com", referral_code=code)
    assert joined.status_code == 201, joined.text

    assert (await a.by_email("ann@example.com")).status_code == 404
    assert (await a.by_code(code)).status_code == 404
    refused = await a.sign_up("dan@example.com", referral_code=code)
    assert refused.json()["code"] == "referral_code_exhausted"


async def test_a_use_that_leaves_uses_keeps_the_code_cached(pair):
    a, b = pair
    code = await b.new_code(await b.owner("ann@example.com"), max_uses=2)
    await a.cached("ann@example.com", code)
    assert (await b.sign_up("cat@example.com", referral_code=code)).status_code == 201
    await a.cached("ann@example.com", code)


async def test_an_expired_code_is_never_served_from_the_cache(pair):
    a, b = pair
    response = await b.create_code(
        await b.owner("ann@example.com"),
        expires_at=(clock.utcnow() + dt.timedelta(hours=1)).isoformat(),
    )
    code = response.json()["code"]
    await a.cached("ann@example.com", code)
    await b.cached("ann@example.com", code)

    with clock.shift(dt.timedelta(minutes=59)):
        assert (await a.by_code(code)).status_code == 200
    with clock.shift(dt.timedelta(hours=1, seconds=1)):
        for app in (a, b):
            assert (await app.by_email("ann@example.com")).status_code == 404
            assert (await app.by_code(code)).status_code == 404
            refused = await app.sign_up(f"late-{id(app)}@example.com", referral_code=code)
            assert refused.json()["code"] == "referral_code_expired"


async def test_no_entry_outlives_its_code(pair, own_redis):
    """Redis's own TTL ends with the code even if the cache TTL is longer."""
    a, b = pair
    response = await b.create_code(
        await b.owner("ann@example.com"),
        expires_at=(clock.utcnow() + dt.timedelta(seconds=90)).isoformat(),
    )
    code = response.json()["code"]
    await a.cached("ann@example.com", code)
    assert 0 < await a.redis.ttl(code_key(code)) <= 90


# -- Redis dead, hung, slow or flushed -------------------------------------------------------


async def test_redis_stopped_mid_test_then_restarted(pair, own_redis):
    a, b = pair
    ann = await b.owner("ann@example.com")
    ann_code = await b.new_code(ann)
    bob = await b.owner("bob@example.com")
    bob_code = await b.new_code(bob, max_uses=1)
    await a.cached("ann@example.com", ann_code)
    await a.cached("bob@example.com", bob_code)
    assert await a.cache_status() == "ok"

    await own_redis.stop()

    # Right answers from the database, none slow (Instance.request checks the time).
    assert (await a.by_email("ann@example.com")).json()["code"] == ann_code
    assert (await a.by_code(ann_code)).json()["code"] == ann_code
    assert await a.cache_status() == "degraded"
    assert await b.cache_status() == "degraded"

    assert (await b.delete_code(ann)).status_code == 204
    assert (await a.by_email("ann@example.com")).status_code == 404
    assert (await a.by_code(ann_code)).status_code == 404

    assert (await b.sign_up("cat@example.com", referral_code=bob_code)).status_code == 201
    assert (await a.by_code(bob_code)).status_code == 404
    exhausted = await a.sign_up("dan@example.com", referral_code=bob_code)
    assert exhausted.json()["code"] == "referral_code_exhausted"

    ann_new = await a.new_code(ann)
    assert (await b.by_email("ann@example.com")).json()["code"] == ann_new
    assert (await a.create_code(ann)).json()["code"] == "active_code_exists"

    await own_redis.start()

    assert await a.cache_status() == "ok"
    assert await b.cache_status() == "ok"
    await a.cached("ann@example.com", ann_new)  # the cache is used again, no restart
    for app in (a, b):
        assert (await app.by_code(ann_code)).status_code == 404
        assert (await app.by_code(bob_code)).status_code == 404
        assert (await app.by_email("bob@example.com")).status_code == 404


async def test_an_invalidation_missed_in_an_outage_is_not_served_after_it(proxied_pair, proxy):
    """Redis keeps its data through a network cut: the code deleted meanwhile stays deleted."""
    a, b = proxied_pair
    ann = await b.owner("ann@example.com")
    code = await b.new_code(ann)
    bob_code = await b.new_code(await b.owner("bob@example.com"))
    await a.cached("ann@example.com", code)
    await a.cached("bob@example.com", bob_code)

    proxy.cut()
    assert (await b.delete_code(ann)).status_code == 204  # its invalidation cannot go out
    assert (await a.by_code(code)).status_code == 404
    assert await b.cache_status() == "degraded"

    proxy.restore()
    for _ in range(3):  # the very next requests, before anyone had time to clean up
        assert (await a.by_email("ann@example.com")).status_code == 404
        assert (await a.by_code(code)).status_code == 404
    await a.cached("bob@example.com", bob_code)
    assert (await a.by_code(code)).status_code == 404
    assert (await b.by_code(code)).status_code == 404
    left = await a.redis.get(code_key(code))
    # Gone, a tombstone, or "no live code" remembered (an empty view): never the deleted view.
    assert left is None or left.startswith(TOMBSTONE) or left.endswith(b"\n")


async def test_a_hung_redis_costs_no_request_more_than_a_bound(proxied_pair, proxy):
    a, b = proxied_pair
    ann = await b.owner("ann@example.com")
    code = await b.new_code(ann, max_uses=1)
    await a.cached("ann@example.com", code)

    proxy.blackhole()
    for _ in range(3):
        assert (await a.by_email("ann@example.com")).json()["code"] == code
        assert (await a.by_code(code)).json()["code"] == code
    assert await a.cache_status() == "degraded"
    assert (await b.sign_up("cat@example.com", referral_code=code)).status_code == 201
    assert (await a.by_code(code)).status_code == 404
    new = await b.new_code(ann)
    assert (await a.by_email("ann@example.com")).json()["code"] == new
    assert (await b.delete_code(ann)).status_code == 204
    assert (await a.by_email("ann@example.com")).status_code == 404

    proxy.restore()
    newest = await a.new_code(ann)
    await a.cached("ann@example.com", newest)
    await b.cached("ann@example.com", newest)
    assert (await b.by_code(new)).status_code == 404
    assert await a.cache_status() == "ok"


async def test_requests_do_not_queue_behind_a_hung_redis(proxied_pair, proxy):
    """With a removal waiting to be delivered to a hung Redis, many requests at once still
    make one attempt between them, not one each in turn (each waiting its own timeout)."""
    _, b = proxied_pair
    ann = await b.owner("ann@example.com")
    code = await b.new_code(ann)
    await b.cached("ann@example.com", code)

    proxy.blackhole()
    assert (await b.delete_code(ann)).status_code == 204  # its removal cannot go out
    cache = b.core.cache
    assert isinstance(cache, RedisCache)
    cache._down_until = 0.0  # the pause after that failure is over: Redis may be asked again
    before = b.redis_waits
    answers = await asyncio.gather(*(b.http.get(f"{API}/referral-codes/{code}") for _ in range(50)))
    assert all(answer.status_code == 404 for answer in answers)
    assert b.redis_waits - before <= 2  # one request's replay, and perhaps the background one
    proxy.restore()


async def test_a_slow_redis_still_serves_and_a_slower_one_is_skipped(proxied_pair, proxy):
    a, b = proxied_pair
    code = await b.new_code(await b.owner("ann@example.com"))

    proxy.delay = 0.04  # round trips well inside the timeout: the cache still pays off
    await a.cached("ann@example.com", code)

    proxy.delay = 0.5  # past the timeout: answered from the database instead, still quick
    for _ in range(3):
        assert (await a.by_email("ann@example.com")).json()["code"] == code
        assert (await a.by_code(code)).json()["code"] == code
    assert await a.cache_status() == "degraded"


async def test_a_flushed_redis_only_costs_misses(pair, own_redis):
    a, b = pair
    headers = await b.owner("ann@example.com")
    code = await b.new_code(headers)
    await a.cached("ann@example.com", code)
    await a.redis.flushall()
    with sql_statements() as statements:
        assert (await a.by_email("ann@example.com")).json()["code"] == code
    assert statements
    await a.cached("ann@example.com", code)
    assert (await b.delete_code(headers)).status_code == 204
    assert (await a.by_email("ann@example.com")).status_code == 404


async def test_an_unknown_email_and_one_without_a_code_cost_the_same(client, register):
    """The same statements either way: their timing cannot tell which emails exist."""
    await register("known@example.com")
    seen = []
    for email in ("known@example.com", "unknown@example.com"):
        with sql_statements() as statements:
            response = await client.get(f"{API}/referral-codes", params={"email": email})
        assert response.status_code == 404
        assert response.json() == {**response.json(), "code": "referral_code_not_found"}
        seen.append(statements)
    assert seen[0] == seen[1]
    assert len(seen[0]) == 1


# -- "no live code" remembered -------------------------------------------------------------


async def test_a_missing_code_is_remembered_and_answered_the_same_without_sql(client, core):
    app = Instance(http=client, core=core)
    await app.owner("ann@example.com")
    first_email, first_code = await app.by_email("ann@example.com"), await app.by_code("nosuch1")
    with sql_statements() as statements:
        again_email, again_code = (
            await app.by_email("ann@example.com"),
            await app.by_code("nosuch1"),
        )
    assert statements == []
    for first, again in ((first_email, again_email), (first_code, again_code)):
        assert first.status_code == again.status_code == 404
        assert again.json() == first.json()
        assert again.json()["code"] == "referral_code_not_found"
        assert again.headers["content-type"] == first.headers["content-type"]


async def test_a_remembered_missing_code_is_forgotten_when_the_code_is_made(pair):
    a, b = pair
    ann = await b.owner("ann@example.com")
    assert (await a.by_email("ann@example.com")).status_code == 404
    assert (await a.by_code("ann-code")).status_code == 404
    assert (await a.by_email("ann@example.com")).status_code == 404  # now from the cache

    # A code created (with the very value looked up) is seen at once, both ways.
    assert await b.new_code(ann, code="ann-code") == "ann-code"
    assert (await a.by_email("ann@example.com")).json()["code"] == "ann-code"
    assert (await a.by_code("ann-code")).json()["code"] == "ann-code"


async def test_a_missing_code_is_remembered_only_for_its_window(client, core, monkeypatch):
    app = Instance(http=client, core=core)
    ann = await app.owner("ann@example.com")
    assert (await app.by_email("ann@example.com")).status_code == 404
    later = clock.utcnow() + dt.timedelta(seconds=core.settings.cache.missing_ttl_seconds + 1)
    monkeypatch.setattr(clock, "timestamp", lambda: later.timestamp())
    with sql_statements() as statements:
        assert (await app.by_email("ann@example.com")).status_code == 404
    assert statements, "past its window the database is asked again"
    assert ann
