"""Operators and a webhook receiver for the webhook tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from core.container import Core
from core.jobs.worker import Worker
from core.webhooks.sender import Sender
from tests.conftest import API
from tests.webhooks.receiver import Receiver


@pytest.fixture
async def api_key(client: httpx.AsyncClient, operator: dict[str, str]) -> dict[str, str]:
    created = await client.post(f"{API}/api-keys", json={"name": "backend"}, headers=operator)
    assert created.status_code == 201, created.text
    return {"X-API-Key": created.json()["key"]}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def deliverer(core: Core) -> AsyncIterator[Worker]:
    """The core's worker, its sender allowed to reach 127.0.0.1 (as with
    WEBHOOK_ALLOW_PRIVATE_NETWORKS=true); tests run it with `run_due()`."""
    original = core.webhooks.sender
    core.webhooks.sender = Sender(timeout=2, allow_private_networks=True)
    yield core.worker()
    await core.webhooks.sender.close()
    core.webhooks.sender = original


@pytest.fixture
def one_attempt(core: Core) -> Iterator[None]:
    """Webhook deliveries get a single attempt (WEBHOOK_RETRY_SCHEDULE empty) in this test."""
    from core.jobs.queue import RetrySchedule
    from core.webhooks.service import WEBHOOK_DELIVERY

    schedules = core.jobs.schedules
    core.jobs.schedules = {**schedules, WEBHOOK_DELIVERY: RetrySchedule(())}
    yield
    core.jobs.schedules = schedules


@pytest.fixture
def endpoint(
    client: httpx.AsyncClient, operator: dict[str, str], receiver: Receiver
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Register the receiver (or `url`) for `events`; the receiver learns the secret."""

    async def create(events: list[str] | None = None, url: str | None = None) -> dict[str, Any]:
        response = await client.post(
            f"{API}/webhooks",
            json={"url": url or receiver.url, "events": events or ["*"]},
            headers=operator,
        )
        assert response.status_code == 201, response.text
        receiver.secrets.append(response.json()["secret"])
        return dict(response.json())

    return create
