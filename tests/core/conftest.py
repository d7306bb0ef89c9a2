"""Private Redis servers for the core's tests of Redis failing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.redis_server import Proxy, RedisServer


@pytest.fixture
async def server() -> AsyncIterator[RedisServer]:
    """A server of the test's own, for tests that stop it."""
    instance = RedisServer()
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def proxy(server: RedisServer) -> AsyncIterator[Proxy]:
    """A proxy to `server` that a test can cut, blackhole or slow down."""
    instance = Proxy(server.port)
    await instance.start()
    yield instance
    await instance.close()
