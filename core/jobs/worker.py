"""Runs jobs: any number of workers, in any number of processes, share one queue.

A worker claims what is due (up to `concurrency` at once), runs each job's handler within a
bound shorter than its lease, and records the outcome. Stopping lets running jobs finish for
a grace period, then puts the rest back in the queue. A job repeats only when its worker died
between doing the work and recording it: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from core.infra import metrics
from core.jobs.queue import ClaimedJob, JobQueue, RetrySchedule

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[ClaimedJob], Awaitable[None]]
Housekeeping = Callable[[], Awaitable[int]]

# After a wake-up that found nothing (the enqueuing transaction had not committed yet), one
# more look this soon, before the regular poll.
_RECHECK_SECONDS = 0.1
_REFILL_SECONDS = 0.002
_HOUSEKEEPING_SECONDS = 3600.0


class RetryLater(Exception):
    """This attempt failed; try again by the schedule, or after `after` seconds."""

    def __init__(self, error: str, *, after: float | None = None) -> None:
        super().__init__(error)
        self.after = after


FinalFailure = Callable[[ClaimedJob, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobKind:
    """A kind of job, declared once beside its handler: its name, its retry schedule, the
    handler (None: another process runs it, as the bot sends chat messages), and what the
    kind's own record does once a job has failed for good, whichever way (`Worker`)."""

    name: str
    schedule: RetrySchedule
    handler: Handler | None = None
    on_final_failure: FinalFailure | None = None


class GiveUp(Exception):
    """Retrying cannot help (a chat that blocked the bot, a job about nothing): failed now."""


class Worker:
    def __init__(
        self,
        *,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        concurrency: int = 8,
        poll_seconds: float = 1.0,
        lease_seconds: float = 60.0,
        grace_seconds: float = 10.0,
        housekeeping: Sequence[Housekeeping] = (),
        beat: Callable[[], None] | None = None,
        name: str | None = None,
        on_final_failure: Mapping[str, FinalFailure] | None = None,
    ) -> None:
        if not handlers:
            raise ValueError("a worker needs at least one job kind")
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.housekeeping = housekeeping
        self.beat = beat  # called on every round (a liveness file for a healthcheck)
        # Per kind: what its own record does when a job has failed for good, however that
        # came about (the last attempt failed, the handler gave up, or a worker died during
        # the last attempt and no handler ran at all).
        self.on_final_failure = dict(on_final_failure or {})
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._running: dict[asyncio.Task[None], ClaimedJob] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None

    @property
    def kinds(self) -> list[str]:
        return sorted(self.handlers)

    def start(self) -> None:
        """Run in the background of this process (the API's in-process worker, the bot's)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"jobs:{','.join(self.kinds)}")

    async def run(self) -> None:
        self._stopping = False
        self._unlisten = self.queue.listen(self._on_enqueue)
        hearing = asyncio.create_task(self.queue.hear_enqueues(self._on_enqueue))
        log.info("worker %s runs %s", self.name, ", ".join(self.kinds))
        loop = asyncio.get_running_loop()
        next_housekeeping = loop.time()
        try:
            while not self._stopping:
                if self.beat is not None:
                    self.beat()
                if self.housekeeping and loop.time() >= next_housekeeping:
                    next_housekeeping = loop.time() + _HOUSEKEEPING_SECONDS
                    await self._keep_house()
                woken = self._wake.is_set()
                self._wake.clear()
                claimed = await self._claim()
                if self._stopping:
                    break
                if claimed and len(self._running) < self.concurrency:
                    continue  # more may be due
                pause = _RECHECK_SECONDS if woken and not claimed else self.poll_seconds
                await self._wait(pause)
        finally:
            hearing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hearing
            if self._unlisten is not None:
                self._unlisten()
                self._unlisten = None

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period, then put the rest
        back in the queue (their attempt not counted)."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running = set(self._running)
        if running:
            _, unfinished = await asyncio.wait(running, timeout=self.grace_seconds)
            for job_task in unfinished:
                job_task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)

    async def run_due(self) -> int:
        """Claim what is due now and run it to the end; returns how many ran (tests, and
        `python -m core.jobs --once`)."""
        total = 0
        while claimed := await self._claim():
            total += claimed
            await self.drain()
        return total

    async def drain(self) -> None:
        """Wait until nothing is running (tests)."""
        while self._running:
            await asyncio.wait(set(self._running))

    def _on_enqueue(self, kind: str) -> None:
        """A job of `kind` was enqueued (here, or in another process); "" : look anyway."""
        if not kind or kind in self.handlers:
            self._wake.set()

    async def _wait(self, seconds: float) -> None:
        woken = asyncio.ensure_future(self._wake.wait())
        waiters: set[asyncio.Future[Any]] = {woken}
        full = len(self._running) >= self.concurrency
        if full:
            waiters.update(self._running)  # a free slot is a reason to look again
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        woken.cancel()
        if full and len(self._running) < self.concurrency:
            # Jobs started together tend to end together: a moment lets the others free their
            # slots, so one claim fills several instead of one claim per slot.
            await asyncio.sleep(_REFILL_SECONDS)

    async def _claim(self) -> int:
        free = self.concurrency - len(self._running)
        if free <= 0:
            return 0
        try:
            jobs = await self.queue.claim(
                kinds=self.kinds, limit=free, lease_seconds=self.lease_seconds
            )
        except Exception as exc:  # the database is away: look again at the next poll
            metrics.outside_failures.labels("database", type(exc).__name__).inc()
            log.warning("could not claim jobs: %s: %s", type(exc).__name__, exc)
            return 0
        for job in jobs:
            task = asyncio.create_task(self._execute(job), name=f"job:{job.kind}:{job.id}")
            self._running[task] = job
            task.add_done_callback(self._running.pop)
        return len(jobs)

    async def _execute(self, job: ClaimedJob) -> None:
        handler = self.handlers[job.kind]
        outcome = "succeeded"
        try:
            if job.attempt > job.max_attempts:
                # Its worker died during the last attempt: no attempt is left to run.
                error = "the worker stopped during the last attempt"
                await self.queue.fail(job, error, final=True)
                outcome = "failed"
                await self._failed_for_good(job, error)
                return
            async with asyncio.timeout(self.lease_seconds * 0.9):
                await handler(job)
        except asyncio.CancelledError:
            if self._stopping:  # the grace period is over: back to the queue
                outcome = "released"
                await asyncio.shield(self._record(self.queue.release(job)))
                return
            raise
        except GiveUp as exc:
            outcome = "failed"
            await self._record(self.queue.fail(job, str(exc), final=True))
            await self._failed_for_good(job, str(exc))
        except RetryLater as exc:
            outcome = await self._failed(job, str(exc), after=exc.after)
        except TimeoutError:
            error = f"no answer within {self.lease_seconds * 0.9:.0f} s"
            outcome = await self._failed(job, error)
        except Exception as exc:
            log.exception("job %d (%s) failed", job.id, job.kind)
            outcome = await self._failed(job, f"{type(exc).__name__}: {exc}")
        else:
            await self._record(self.queue.succeed(job))
        finally:
            metrics.jobs.labels(job.kind, outcome).inc()

    async def _failed(self, job: ClaimedJob, error: str, *, after: float | None = None) -> str:
        retry_at = await self._record(self.queue.fail(job, error, after=after))
        if retry_at is None and job.is_last_attempt:
            log.warning(
                "job %d (%s) failed after %d attempts: %s", job.id, job.kind, job.attempt, error
            )
            await self._failed_for_good(job, error)
            return "failed"
        return "retried"

    async def _failed_for_good(self, job: ClaimedJob, error: str) -> None:
        hook = self.on_final_failure.get(job.kind)
        if hook is None:
            return
        try:
            await hook(job, error)
        except Exception:  # its record stays as it was; the job's own says failed
            log.exception("job %d (%s): its final-failure hook failed", job.id, job.kind)

    async def _record(self, outcome: Awaitable[T]) -> T | None:
        """Store an outcome; if the database is away, the lease ends and the job runs again."""
        try:
            return await outcome
        except Exception as exc:
            log.warning("could not record a job's outcome: %s: %s", type(exc).__name__, exc)
            return None

    async def _keep_house(self) -> None:
        for task in self.housekeeping:
            try:
                removed = await task()
            except Exception:
                log.exception("housekeeping failed; it runs again in an hour")
            else:
                if removed:
                    log.info("removed %d finished records past their retention", removed)
