"""Dialog state in Redis when configured, in memory while Redis fails: the bot keeps answering.

Redis is an optimisation here as in the API: it lets state outlive a restart and be shared by
replicas. Each call is bounded by a short timeout; after a failure the bot uses its own memory
for a pause, logs the outage once and its end once, and tries Redis again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage

from core.infra import metrics
from core.infra.cache import REDIS_ERRORS

log = logging.getLogger(__name__)

StateType = str | State | None


class FallbackStorage(BaseStorage):
    def __init__(
        self, redis: RedisStorage, *, timeout: float = 0.5, pause_after_error: float = 5.0
    ) -> None:
        self.redis = redis
        self.memory = MemoryStorage()
        self._timeout = timeout
        self._pause = pause_after_error
        self._down_until = 0.0
        self._down = False

    async def _redis_call(self, name: str, *args: Any) -> tuple[bool, Any]:
        """(True, result) from Redis, or (False, None) when it failed or is paused."""
        if self._down_until > time.monotonic():
            return False, None
        try:
            async with asyncio.timeout(self._timeout):
                result = await getattr(self.redis, name)(*args)
        except REDIS_ERRORS as exc:
            metrics.outside_failures.labels("redis", type(exc).__name__).inc()
            if not self._down:
                self._down = True
                log.warning("dialog state: Redis unavailable, keeping it in memory: %r", exc)
            self._down_until = time.monotonic() + self._pause
            return False, None
        if self._down:
            self._down = False
            log.warning("dialog state: Redis is back")
        return True, result

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._redis_call("set_state", key, state)
        await self.memory.set_state(key, state)  # the stand-in stays current either way

    async def get_state(self, key: StorageKey) -> str | None:
        done, state = await self._redis_call("get_state", key)
        return state if done else await self.memory.get_state(key)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._redis_call("set_data", key, data)
        await self.memory.set_data(key, data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        done, data = await self._redis_call("get_data", key)
        return dict(data) if done else await self.memory.get_data(key)

    async def close(self) -> None:
        await self.memory.close()
        with contextlib.suppress(*REDIS_ERRORS):
            await self.redis.close()
