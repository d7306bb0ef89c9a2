"""The job queue: enqueue inside the caller's transaction, claim with a lease, finish once.

A job is enqueued with the change that causes it (the outbox pattern): a sign-up and its jobs
commit together or not at all. Workers claim due jobs with `FOR UPDATE SKIP LOCKED` on
PostgreSQL (SQLite's single writer serialises claims there), each claim taking a lease: only
the worker holding it can finish the job, and a job whose worker died is due again when the
lease ends. One retry policy for every kind: a schedule of pauses between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from core.infra import clock
from core.infra.db import Read, database, execute, in_transaction, is_mysql
from core.infra.errors import InvalidInput
from core.infra.pagination import delete_finished, newest_first
from core.jobs.models import (
    FAILED,
    QUEUED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    UNFINISHED,
    UNFINISHED_SQL,
    Job,
)

log = logging.getLogger(__name__)

_jobs = Job.ormar_config.table
_ERROR_LENGTH = 500
# PostgreSQL's NOTIFY channel of enqueued jobs (the payload is the kind).
WAKEUP_CHANNEL = "jobs_enqueued"
# A job's INSERT, built once; on PostgreSQL a job due now also notifies WAKEUP_CHANNEL in the
# same statement (delivered at commit).
_ENQUEUE = (
    sa.insert(_jobs)
    .values(
        kind=sa.bindparam("v_kind"),
        payload=sa.bindparam("v_payload", type_=_jobs.c.payload.type),
        status=QUEUED,
        attempts=0,
        max_attempts=sa.bindparam("v_max_attempts"),
        run_at=sa.bindparam("v_run_at", type_=_jobs.c.run_at.type),
        created_at=sa.bindparam("v_created_at", type_=_jobs.c.created_at.type),
    )
    .returning(_jobs.c.id, _jobs.c.kind)
)
_ADDED = _ENQUEUE.cte("added")
_ENQUEUE_NOTIFY = sa.select(_ADDED.c.id, sa.func.pg_notify(WAKEUP_CHANNEL, _ADDED.c.kind))
# Pauses before listening again after the connection was lost, longest last.
_RELISTEN_PAUSES = (0.5, 1, 2, 5, 10, 30)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Pauses between attempts: `(5, 60)` means an attempt at once, one 5 s after a failure,
    one 60 s after that, then the job has failed."""

    pauses: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """`"5,300,1800"`: seconds between attempts (empty: a single attempt)."""
        pauses = tuple(float(part) for part in text.split(",") if part.strip())
        if any(pause < 0 for pause in pauses):
            raise ValueError("a retry schedule is pauses in seconds, none negative: '5,300,1800'")
        return cls(pauses)

    @classmethod
    def doubling(cls, first: float, *, attempts: int, cap: float) -> RetrySchedule:
        return cls(tuple(min(first * 2**n, cap) for n in range(attempts - 1)))

    @property
    def max_attempts(self) -> int:
        return len(self.pauses) + 1

    def pause_after(self, attempt: int) -> float | None:
        """The pause after a failed `attempt` (1-based); None when it was the last."""
        return self.pauses[attempt - 1] if attempt <= len(self.pauses) else None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int  # this one, counting from 1
    max_attempts: int
    lease: str
    schedule: RetrySchedule

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def retry_at(self, now: dt.datetime, after: float | None = None) -> dt.datetime | None:
        """When this job runs again if this attempt fails (None: it will have failed)."""
        if self.is_last_attempt:
            return None
        pause = self.schedule.pause_after(self.attempt) if after is None else after
        return now + dt.timedelta(seconds=pause or 0)


@functools.lru_cache(maxsize=16)
def _due_of(kinds: tuple[str, ...]) -> sa.Select[Any]:
    return (
        sa.select(_jobs.c.id)
        .where(
            UNFINISHED_SQL,  # as the partial index ix_jobs_due says it, so the plan uses it
            _jobs.c.run_at <= sa.bindparam("claim_now", type_=_jobs.c.run_at.type),
            # Plain parameters (an IN list would expand at each execution, not once).
            sa.or_(*(_jobs.c.kind == sa.literal(kind) for kind in kinds)),
        )
        .order_by(_jobs.c.run_at, _jobs.c.id)
        .limit(sa.bindparam("claim_limit"))
        .with_for_update(skip_locked=True)
    )


_TAKE = sa.update(_jobs).values(
    status=RUNNING,
    attempts=_jobs.c.attempts + 1,
    lease=sa.bindparam("claim_lease"),
    run_at=sa.bindparam("claim_until", type_=_jobs.c.run_at.type),
)
_CLAIMED_COLUMNS = (
    _jobs.c.id,
    _jobs.c.kind,
    _jobs.c.payload,
    _jobs.c.attempts,
    _jobs.c.max_attempts,
)


@functools.lru_cache(maxsize=16)
def _claim_of(kinds: tuple[str, ...]) -> Read:
    """The claim of a worker's kinds, built and compiled once per set of kinds."""
    due = _due_of(kinds).cte("due")
    return Read(_TAKE.where(_jobs.c.id.in_(sa.select(due.c.id))).returning(*_CLAIMED_COLUMNS))


async def _claim_apart(kinds: tuple[str, ...], **params: Any) -> Sequence[Sequence[Any]]:
    """The claim where UPDATE returns no rows and takes no LIMIT in a subquery (MySQL and
    MariaDB): the due rows locked (SKIP LOCKED: workers never wait on each other), taken,
    read back, in one transaction."""
    async with database.transaction(), database.connection() as connection:
        ids = [row[0] for row in await execute(connection, _due_of(kinds), params)]
        if not ids:
            return []
        await execute(connection, _TAKE.where(_jobs.c.id.in_(ids)), params)
        claimed = sa.select(*_CLAIMED_COLUMNS).where(_jobs.c.id.in_(ids))
        return (await execute(connection, claimed.order_by(_jobs.c.run_at, _jobs.c.id))).all()


# Safe to repeat (a second run finds the job no longer running under that lease), so it may
# take the hot-read path with its one retry on a connection the server closed.
_SUCCEED = Read(
    sa.update(_jobs)
    .where(
        _jobs.c.id == sa.bindparam("claimed_id"),
        _jobs.c.lease == sa.bindparam("claimed_lease"),
        _jobs.c.status == RUNNING,
    )
    .values(
        status=SUCCEEDED, finished_at=sa.bindparam("ended"), lease=sa.null(), last_error=sa.null()
    )
    .returning(_jobs.c.id)
)


@dataclass(frozen=True, slots=True)
class JobView:
    id: int
    kind: str
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: dt.datetime
    run_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[JobView]
    next_cursor: str | None


_LISTED = tuple(_jobs.c[name] for name in JobView.__dataclass_fields__)


@dataclass
class JobQueue:
    default_schedule: RetrySchedule
    schedules: Mapping[str, RetrySchedule] = field(default_factory=dict)
    _listeners: list[Callable[[str], None]] = field(default_factory=list, repr=False)

    def declare(self, kind: str, schedule: RetrySchedule) -> None:
        """The retry schedule of a kind (its `JobKind`); an undeclared kind takes the default."""
        self.schedules = {**self.schedules, kind: schedule}

    def schedule_of(self, kind: str) -> RetrySchedule:
        return self.schedules.get(kind, self.default_schedule)

    def listen(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Be told of every job this process enqueues (a worker here wakes up at once)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    async def enqueue(self, kind: str, payload: dict[str, Any], *, delay: float = 0) -> int:
        """Add a job, in the caller's transaction: it commits with the change that asks for it.
        On PostgreSQL the same statement notifies WAKEUP_CHANNEL (delivered at commit), so
        idle workers in other processes start it at once instead of at their next poll."""
        connection = in_transaction()
        now = clock.utcnow()
        statement = _ENQUEUE_NOTIFY if database.is_postgresql and delay <= 0 else _ENQUEUE
        values = {
            "v_kind": kind,
            "v_payload": payload,
            "v_max_attempts": self.schedule_of(kind).max_attempts,
            "v_run_at": now + dt.timedelta(seconds=delay),
            "v_created_at": now,
        }
        job_id = int((await execute(connection, statement, values)).one()[0])
        for listener in list(self._listeners):
            listener(kind)
        return job_id

    async def claim(
        self, *, kinds: Iterable[str], limit: int, lease_seconds: float
    ) -> list[ClaimedJob]:
        """Take up to `limit` due jobs of these kinds, the earliest due first, for one lease."""
        now = clock.utcnow()
        lease = secrets.token_hex(8)
        params = {
            "claim_now": now,
            "claim_limit": limit,
            "claim_lease": lease,
            "claim_until": now + dt.timedelta(seconds=lease_seconds),
        }
        chosen = tuple(sorted(kinds))
        if is_mysql(database.engine.dialect.name):
            rows = await _claim_apart(chosen, **params)
        else:
            # One statement, atomic on its own: no BEGIN and COMMIT around it (two round trips).
            rows = await _claim_of(chosen).all(**params)
        jobs = []
        for job_id, kind, payload, attempts, max_attempts in rows:
            if isinstance(payload, str):  # the driver's own JSON text, on the hot path
                payload = json.loads(payload)
            jobs.append(
                ClaimedJob(
                    id=job_id,
                    kind=kind,
                    payload=payload if isinstance(payload, dict) else {},
                    attempt=attempts,
                    max_attempts=max_attempts,
                    lease=lease,
                    schedule=self.schedule_of(kind),
                )
            )
        return sorted(jobs, key=lambda job: job.id)

    async def succeed(self, job: ClaimedJob) -> bool:
        """Record a job done, while this worker still holds its lease (the hottest write of
        a worker: one statement compiled once, on the pooled connection itself)."""
        rows = await _SUCCEED.all(claimed_id=job.id, claimed_lease=job.lease, ended=clock.utcnow())
        if not rows:
            log.warning("job %d (%s): its lease had ended; another worker has it", job.id, job.kind)
        return bool(rows)

    async def fail(
        self, job: ClaimedJob, error: str, *, final: bool = False, after: float | None = None
    ) -> dt.datetime | None:
        """Count a failed attempt: the job is due again by the schedule (or `after` seconds),
        or, past its last attempt or `final`, it has failed for good. Returns when it is due
        again, None when it has failed."""
        now = clock.utcnow()
        retry_at = None if final else job.retry_at(now, after)
        values: dict[str, Any] = {"last_error": error[:_ERROR_LENGTH], "lease": None}
        if retry_at is None:
            values.update(status=FAILED, finished_at=now)
        else:
            values.update(status=QUEUED, run_at=retry_at)
        await self._finish(job, **values)
        return retry_at

    async def release(self, job: ClaimedJob) -> bool:
        """Put a job back, due at once, its attempt not counted (a worker stopping)."""
        return await self._finish(
            job,
            status=QUEUED,
            run_at=clock.utcnow(),
            lease=None,
            attempts=_jobs.c.attempts - 1,
        )

    async def purge(self, *, older_than: dt.timedelta, batch: int = 1000) -> int:
        """Remove finished jobs past their retention, in batches; returns how many."""
        return await delete_finished(
            _jobs, _jobs.c.finished_at, cutoff=clock.utcnow() - older_than, batch=batch
        )

    async def listing(
        self, *, limit: int, cursor: str | None = None, status: str | None = None
    ) -> JobPage:
        """Jobs newest first (of one status), for operators: what failed and why. Payloads are
        left out: they may name people."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status is one of {', '.join(STATUSES)}.", field="status")
        statement = sa.select(*_LISTED)
        if status is not None:
            statement = statement.where(_jobs.c.status == status)
        rows, next_cursor = await newest_first(statement, _jobs.c.id, limit=limit, cursor=cursor)
        return JobPage([JobView(**row._mapping) for row in rows], next_cursor)

    @staticmethod
    async def kind_of(job_id: int) -> str | None:
        async with database.connection() as connection:
            kind = (
                await execute(connection, sa.select(_jobs.c.kind).where(_jobs.c.id == job_id))
            ).scalar()
        return str(kind) if kind is not None else None

    async def retry(self, job_id: int) -> bool:
        """Queue a failed job again, due now, with its attempts from zero; False when it is
        not a failed job."""
        statement = (
            sa.update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.status == FAILED)
            .values(status=QUEUED, attempts=0, run_at=clock.utcnow(), finished_at=None)
            .returning(_jobs.c.kind)
        )
        async with database.connection() as connection:
            kind = (await execute(connection, statement)).scalar()
        if kind is None:
            return False
        for listener in list(self._listeners):
            listener(kind)
        return True

    async def oldest_due_seconds(self) -> float:
        """How long the earliest due job has waited (0: none waits). It grows when no worker
        runs the due kinds: the first sign that mail and webhooks are piling up."""
        now = clock.utcnow()
        statement = sa.select(sa.func.min(_jobs.c.run_at)).where(
            _jobs.c.status.in_(UNFINISHED), _jobs.c.run_at <= now
        )
        async with database.connection() as connection:
            oldest = (await execute(connection, statement)).scalar()
        if oldest is None:
            return 0.0
        if oldest.tzinfo is None:  # an aggregate skips the column type's conversion
            oldest = oldest.replace(tzinfo=dt.UTC)
        return max(0.0, (now - oldest).total_seconds())

    async def hear_enqueues(self, callback: Callable[[str], None]) -> None:
        """Until cancelled: tell `callback` of every job another process enqueues, through a
        PostgreSQL connection of its own that LISTENs (nothing to do on SQLite, whose single
        file has one writer process in the embedded default, nor on MySQL, which has no
        NOTIFY: there the workers' polling finds every job). A lost connection is opened
        again; meanwhile the polling still finds every job."""
        if not database.is_postgresql:
            return
        import asyncpg  # PostgreSQL only

        url = make_url(database.url).set(drivername="postgresql")
        failures = 0
        while True:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    url.render_as_string(hide_password=False), timeout=5
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                pause = _RELISTEN_PAUSES[min(failures, len(_RELISTEN_PAUSES) - 1)]
                failures += 1
                log.warning("cannot listen for enqueued jobs (%s); polling meanwhile", exc)
                await asyncio.sleep(pause)
                continue
            try:
                connection.add_termination_listener(lambda _, done=lost: done.set())
                await connection.add_listener(
                    WAKEUP_CHANNEL, lambda _c, _pid, _channel, kind: callback(str(kind))
                )
                failures = 0
                callback("")  # what was enqueued before listening is looked for now
                await lost.wait()
                log.warning("the connection listening for enqueued jobs was lost")
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), timeout=2)

    async def counts(self) -> dict[str, int]:
        """Jobs by status (the failed ones stay visible until their retention ends)."""
        statement = sa.select(_jobs.c.status, sa.func.count()).group_by(_jobs.c.status)
        async with database.connection() as connection:
            rows = (await execute(connection, statement)).all()
        return {status: count for status, count in rows}

    @staticmethod
    async def _finish(job: ClaimedJob, **values: Any) -> bool:
        """Change the job only while this worker still holds its lease."""
        statement = (
            sa.update(_jobs)
            .where(_jobs.c.id == job.id, _jobs.c.lease == job.lease, _jobs.c.status == RUNNING)
            .values(**values)
        )
        async with database.connection() as connection:  # one statement: atomic alone
            updated = (await execute(connection, statement)).rowcount
        if not updated:
            log.warning("job %d (%s): its lease had ended; another worker has it", job.id, job.kind)
        return bool(updated)
