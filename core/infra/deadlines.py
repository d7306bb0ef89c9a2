"""Bounds on many concurrent waits, kept by one watcher task instead of a timer each.

`asyncio.timeout` arms a timer per wait and redis-py, given a socket timeout, runs each send
as a task of its own under `wait_for` and each read under a timer: on a cache hit that
bookkeeping cost as much as everything else the service adds to the round trip. Here a wait
costs a dict insert and a delete; one task per event loop looks every `tick` seconds and
cancels the tasks past their deadline, so a wait is cut between `timeout` and
`timeout + tick` after it began.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlines:
    def __init__(self, timeout: float, *, tick: float = 0.25) -> None:
        self.timeout = timeout
        self.tick = min(tick, timeout)
        self._running: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None

    def enter(self, task: asyncio.Task[Any]) -> None:
        """Watch `task` from now: it is cancelled once `timeout` has passed."""
        loop = task.get_loop()
        self._running[task] = loop.time() + self.timeout
        watcher = self._watcher
        if watcher is None or watcher.done() or watcher.get_loop() is not loop:
            self._watcher = loop.create_task(self._watch(), name="deadlines")

    def leave(self, task: asyncio.Task[Any]) -> None:
        self._running.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether this task's cancellation was its deadline's."""
        return task in self._expired

    async def bound(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s result, or TimeoutError once the deadline has passed (what
        `asyncio.timeout` does; a cancellation from elsewhere still propagates)."""
        task = asyncio.current_task()
        assert task is not None  # awaited inside a task
        if task in self._running:  # already watched by this instance: the outer bound holds
            return await awaitable
        self.enter(task)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if task.uncancel() == 0:
                    raise TimeoutError(f"no answer within {self.timeout:g}s") from None
            raise
        finally:
            if task in self._expired:  # cancelled, and the wait swallowed it: take it back
                task.uncancel()
            self.leave(task)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running:
            await asyncio.sleep(self.tick)
            now = loop.time()
            for task, deadline in list(self._running.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
        self._watcher = None
