"""One watcher bounding many waits: what `asyncio.timeout` does, without a timer each."""

from __future__ import annotations

import asyncio

import pytest

from core.infra.deadlines import Deadlines


async def forever(started: asyncio.Event | None = None) -> None:
    """A wait that only a cancellation ends."""
    if started is not None:
        started.set()
    await asyncio.Event().wait()


async def test_a_wait_past_its_deadline_raises_timeout_error() -> None:
    deadlines = Deadlines(0.1, tick=0.02)
    with pytest.raises(TimeoutError):
        await deadlines.bound(forever())
    assert not deadlines._running
    assert not deadlines._expired
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_wait_within_its_deadline_returns_its_result() -> None:
    deadlines = Deadlines(1.0, tick=0.02)

    async def answer() -> str:
        await asyncio.sleep(0)  # one turn of the loop: a wait, not a timer
        return "ok"

    assert await deadlines.bound(answer()) == "ok"
    assert not deadlines._running


async def test_many_waits_share_one_watcher_and_each_keeps_its_own_deadline() -> None:
    deadlines = Deadlines(0.1, tick=0.02)

    async def one(ends: bool) -> str:
        try:
            await deadlines.bound(asyncio.sleep(0) if ends else forever())
        except TimeoutError:
            return "cut"
        return "done"

    results = await asyncio.gather(*(one(n % 2 == 1) for n in range(20)))
    assert results == ["cut", "done"] * 10
    assert not deadlines._running


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout() -> None:
    deadlines = Deadlines(5.0, tick=0.02)
    started = asyncio.Event()
    task = asyncio.create_task(deadlines.bound(forever(started)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._running


async def test_an_outer_cancellation_during_an_expiry_still_propagates() -> None:
    """The deadline and the task's owner cancel it at once: the owner's cancellation wins,
    as it does with asyncio.timeout."""
    deadlines = Deadlines(5.0, tick=0.02)
    started = asyncio.Event()
    task = asyncio.create_task(deadlines.bound(forever(started)))
    await started.wait()
    deadlines._expired.add(task)  # what the watcher does when the deadline passes ...
    task.cancel()
    task.cancel()  # ... and the owner's own cancellation
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._running
    assert not deadlines._expired


async def test_a_nested_bound_of_the_same_watcher_keeps_the_outer_deadline() -> None:
    deadlines = Deadlines(0.1, tick=0.02)

    async def inner() -> None:
        await deadlines.bound(forever())

    with pytest.raises(TimeoutError):
        await deadlines.bound(inner())
    assert not deadlines._running
