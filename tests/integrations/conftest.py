"""Apps whose core talks to the fake Hunter and Clearbit servers through the real httpx client."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from core.container import Core, build_core
from core.infra.settings import Settings
from tests.conftest import API, PASSWORD
from tests.fakes import clearbit as fake_clearbit_api
from tests.fakes import hunter as fake_hunter_api
from tests.fakes.clearbit import FakeClearbit
from tests.fakes.hunter import FakeHunter

# Small numbers keep the failure paths fast: a "slow" fake answers after 2 s.
TIMEOUT = 0.3
RETRY_SECONDS = 0.05
MAX_ATTEMPTS = 3


@dataclass
class RunningApp:
    core: Core
    client: httpx.AsyncClient
    stop: Callable[[], Awaitable[None]]

    async def register(self, email: str, **fields: Any) -> httpx.Response:
        body = {"email": email, "password": PASSWORD, **fields}
        return await self.client.post(f"{API}/auth/register", json=body)

    async def me(self, email: str) -> dict[str, Any]:
        token = await self.client.post(
            f"{API}/auth/token", data={"username": email, "password": PASSWORD}
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        response = await self.client.get(f"{API}/users/me", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()


StartApp = Callable[..., Awaitable[RunningApp]]


@pytest.fixture(scope="session")
async def fake_hunter() -> AsyncIterator[FakeHunter]:
    server = FakeHunter()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def fake_clearbit() -> AsyncIterator[FakeClearbit]:
    server = FakeClearbit()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def hunter(fake_hunter: FakeHunter) -> AsyncIterator[FakeHunter]:
    fake_hunter.reset()
    yield fake_hunter
    fake_hunter.reset()


@pytest.fixture
async def clearbit(fake_clearbit: FakeClearbit) -> AsyncIterator[FakeClearbit]:
    fake_clearbit.reset()
    yield fake_clearbit
    fake_clearbit.reset()


@pytest.fixture
async def start_app(
    core: Core, settings: Settings, hunter: FakeHunter, clearbit: FakeClearbit
) -> AsyncIterator[StartApp]:
    """Start an API app with its own core; `core` (the session one) keeps the database open
    and empties it after the test, once every app started here has stopped."""
    from api.main import create_app

    async with AsyncExitStack() as apps:

        async def start(
            *,
            with_hunter: bool = True,
            with_clearbit: bool = True,
            worker: bool = True,
            **overrides: Any,
        ) -> RunningApp:
            """`worker`: the app runs its jobs itself, as `make run` does (else the test
            runs them with `core.worker().run_due()`)."""
            integrations = settings.integrations.model_copy(
                update={
                    "hunter_api_key": SecretStr(fake_hunter_api.API_KEY) if with_hunter else None,
                    "hunter_base_url": hunter.url,
                    "clearbit_api_key": (
                        SecretStr(fake_clearbit_api.API_KEY) if with_clearbit else None
                    ),
                    "clearbit_base_url": clearbit.url,
                    "timeout_seconds": TIMEOUT,
                    "max_retries": 1,
                    "enrichment_retry_seconds": RETRY_SECONDS,
                    "enrichment_max_attempts": MAX_ATTEMPTS,
                    **overrides,
                }
            )
            jobs = settings.jobs.model_copy(
                update={
                    "in_process": "true" if worker else "false",
                    "poll_seconds": 0.05,
                    "grace_seconds": 0.2,
                }
            )
            app_settings = settings.model_copy(update={"integrations": integrations, "jobs": jobs})
            app_core = build_core(app_settings)
            stack = AsyncExitStack()
            manager = await stack.enter_async_context(
                LifespanManager(create_app(app_settings, core=app_core))
            )
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
                )
            )
            apps.push_async_callback(stack.aclose)
            return RunningApp(core=app_core, client=client, stop=stack.aclose)

        yield start


async def eventually(check: Callable[[], Any], *, within: float = 5.0) -> Any:
    """Poll `check` (plain or async) with short awaits until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"still {result!r} after {within}s")
        await asyncio.sleep(0.02)
