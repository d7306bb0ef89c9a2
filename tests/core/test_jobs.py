"""The job queue and its worker, in one process, on the run's database."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from core.container import Core
from core.infra import clock, db
from core.jobs.models import Job
from core.jobs.queue import ClaimedJob, JobQueue, RetrySchedule
from core.jobs.worker import GiveUp, RetryLater, Worker
from tests.jobs import enqueue

KIND = "test.job"


@pytest.fixture
def queue() -> JobQueue:
    return JobQueue(default_schedule=RetrySchedule((10, 60)))


def _worker(queue: JobQueue, handler, **options) -> Worker:
    return Worker(queue=queue, handlers={KIND: handler}, **options)


async def test_a_job_enqueued_in_a_transaction_that_rolls_back_never_exists(
    core: Core, queue: JobQueue
) -> None:
    async def failing_change() -> None:
        async with db.database.transaction():
            await queue.enqueue(KIND, {"n": 1})
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError, match="business change"):
        await failing_change()
    assert await Job.objects.count() == 0

    async with db.database.transaction():
        await queue.enqueue(KIND, {"n": 2})
    (job,) = await Job.objects.all()
    assert (job.payload, job.status, job.attempts, job.max_attempts) == ({"n": 2}, "queued", 0, 3)


async def test_a_job_is_only_queued_inside_the_change_that_asks_for_it(queue: JobQueue) -> None:
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        await queue.enqueue(KIND, {})
    assert await Job.objects.count() == 0


async def test_a_claimed_job_is_its_workers_until_the_lease_ends(
    core: Core, queue: JobQueue
) -> None:
    await enqueue(queue, KIND, {})
    (first,) = await queue.claim(kinds=[KIND], limit=10, lease_seconds=30)
    assert first.attempt == 1
    assert await queue.claim(kinds=[KIND], limit=10, lease_seconds=30) == []

    # Its worker died: once the lease is over, another worker takes the job.
    with clock.shift(dt.timedelta(seconds=31)):
        (second,) = await queue.claim(kinds=[KIND], limit=10, lease_seconds=30)
        assert second.id == first.id
        assert second.attempt == 2
        # The first worker, late, cannot finish what is no longer its own.
        assert not await queue.succeed(first)
        assert await queue.succeed(second)
    (job,) = await Job.objects.all()
    assert (job.status, job.attempts, job.lease) == ("succeeded", 2, None)


async def test_only_the_kinds_a_worker_runs_are_claimed(core: Core, queue: JobQueue) -> None:
    await enqueue(queue, "other.kind", {})
    assert await queue.claim(kinds=[KIND], limit=10, lease_seconds=30) == []
    assert len(await queue.claim(kinds=["other.kind"], limit=10, lease_seconds=30)) == 1


async def test_failing_twice_then_succeeding_follows_the_schedule(
    core: Core, queue: JobQueue
) -> None:
    runs: list[int] = []

    async def flaky(job: ClaimedJob) -> None:
        runs.append(job.attempt)
        if job.attempt < 3:
            raise RetryLater(f"attempt {job.attempt} failed")

    worker = _worker(queue, flaky)
    await enqueue(queue, KIND, {})
    assert await worker.run_due() == 1
    (job,) = await Job.objects.all()
    assert (job.status, job.attempts, job.last_error) == ("queued", 1, "attempt 1 failed")
    assert 9 < (job.run_at - clock.utcnow()).total_seconds() <= 10

    with clock.shift(dt.timedelta(seconds=9)):
        assert await worker.run_due() == 0  # not yet
    with clock.shift(dt.timedelta(seconds=11)):
        assert await worker.run_due() == 1
        (job,) = await Job.objects.all()
        assert 59 < (job.run_at - clock.utcnow()).total_seconds() <= 60
    with clock.shift(dt.timedelta(seconds=11 + 61)):
        assert await worker.run_due() == 1
    assert runs == [1, 2, 3]
    (job,) = await Job.objects.all()
    assert (job.status, job.attempts) == ("succeeded", 3)
    assert job.finished_at is not None


async def test_attempts_are_capped_and_the_failure_is_kept(core: Core, queue: JobQueue) -> None:
    async def broken(job: ClaimedJob) -> None:
        raise ValueError("no such thing")

    worker = _worker(queue, broken)
    await enqueue(queue, KIND, {})
    for hours in range(5):
        with clock.shift(dt.timedelta(hours=hours)):
            await worker.run_due()
    (job,) = await Job.objects.all()
    assert (job.status, job.attempts) == ("failed", 3)
    assert job.last_error == "ValueError: no such thing"
    assert await queue.counts() == {"failed": 1}


async def test_give_up_fails_at_once(core: Core, queue: JobQueue) -> None:
    async def hopeless(job: ClaimedJob) -> None:
        raise GiveUp("the chat is gone")

    await enqueue(queue, KIND, {})
    await _worker(queue, hopeless).run_due()
    (job,) = await Job.objects.all()
    assert (job.status, job.attempts, job.last_error) == ("failed", 1, "the chat is gone")


async def test_a_worker_that_died_on_the_last_attempt_leaves_the_job_failed(
    core: Core, queue: JobQueue
) -> None:
    await enqueue(queue, KIND, {})
    ran: list[int] = []

    async def record(job: ClaimedJob) -> None:
        ran.append(job.attempt)

    for n in range(3):  # three claims whose workers all died
        with clock.shift(dt.timedelta(minutes=n)):
            assert len(await queue.claim(kinds=[KIND], limit=1, lease_seconds=30)) == 1
    with clock.shift(dt.timedelta(minutes=3)):
        assert await _worker(queue, record).run_due() == 1
    assert ran == []
    (job,) = await Job.objects.all()
    assert job.status == "failed"
    assert "last attempt" in (job.last_error or "")


async def test_a_stopping_worker_lets_jobs_finish_then_puts_the_rest_back(
    core: Core, queue: JobQueue
) -> None:
    running: list[int] = []
    both_running = asyncio.Event()
    finish_quickly = asyncio.Event()
    never = asyncio.Event()

    async def slow(job: ClaimedJob) -> None:
        running.append(job.id)
        if len(running) == 2:
            both_running.set()
        await (never if job.payload["slow"] else finish_quickly).wait()

    worker = _worker(queue, slow, poll_seconds=0.01, grace_seconds=0.2)
    await enqueue(queue, KIND, {"slow": False})
    await enqueue(queue, KIND, {"slow": True})
    worker.start()
    await both_running.wait()
    stopping = asyncio.create_task(worker.stop())
    finish_quickly.set()
    await stopping

    quick, slow_job = await Job.objects.order_by("id").all()
    assert (quick.status, quick.attempts) == ("succeeded", 1)
    # Back in the queue, due at once, its cut-short attempt not counted.
    assert (slow_job.status, slow_job.attempts, slow_job.lease) == ("queued", 0, None)
    assert slow_job.run_at <= clock.utcnow()


async def test_an_enqueue_in_this_process_wakes_its_worker(core: Core, queue: JobQueue) -> None:
    done = asyncio.Event()

    async def handler(job: ClaimedJob) -> None:
        done.set()

    worker = _worker(queue, handler, poll_seconds=3600)  # it would never poll in this test
    worker.start()
    try:
        await asyncio.sleep(0)  # let it take its first look (nothing due)
        await enqueue(queue, KIND, {})
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await worker.stop()


async def test_finished_jobs_are_removed_after_their_retention(core: Core, queue: JobQueue) -> None:
    async def handler(job: ClaimedJob) -> None:
        return None

    await enqueue(queue, KIND, {"old": True})
    await _worker(queue, handler).run_due()
    await enqueue(queue, KIND, {"old": False})  # unfinished: never removed
    retention = dt.timedelta(days=30)
    assert await queue.purge(older_than=retention) == 0
    with clock.shift(retention + dt.timedelta(minutes=1)):
        assert await queue.purge(older_than=retention) == 1
    (left,) = await Job.objects.all()
    assert left.payload == {"old": False}


def test_a_schedule_is_pauses_between_attempts() -> None:
    schedule = RetrySchedule.parse("1,1,2")
    assert schedule.max_attempts == 4
    assert [schedule.pause_after(n) for n in (1, 2, 3, 4)] == [1, 1, 2, None]
    assert RetrySchedule.parse("").max_attempts == 1
    with pytest.raises(ValueError, match="none negative"):
        RetrySchedule.parse("5,-1")
