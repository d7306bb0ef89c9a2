"""Background enrichment of new profiles: a queue and one task, started and stopped with Core.

The database is the source of truth, not the queue: a user waits with
`enrichment_status = "pending"` until a lookup settles it, and a lookup the provider queued
or could not answer stores when to ask again in `enrichment_retry_at`. The worker queues the
due pending users at start and again on every scan (each `retry_delay`, at most a minute, or
sooner when a known retry falls due), so a restart asks nobody early and a running process
also finishes what a stopped one left behind. Each lookup first claims the row with a
conditional UPDATE on `enrichment_attempts`, so two processes never both store a result
for the same attempt, and a crash mid-lookup costs one attempt, not the user. The claim
also moves `enrichment_retry_at` on by the retry delay, so other processes' scans leave a
lookup in flight alone for that long.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from core import clock
from core.db import database
from core.integrations.base import Enricher, Enrichment, Outcome, Profile
from core.referrals.service import ReferralService
from core.users.models import User

log = logging.getLogger(__name__)

PENDING = "pending"
DONE = "done"
NOT_FOUND = "not_found"
FAILED = "failed"
MAX_RETRY_DELAY = 3600.0
MAX_SCAN_INTERVAL = 60.0
# Due users queued per scan: a backlog (a long Clearbit outage) is worked through in batches.
SCAN_BATCH = 500
_BACKLOG_SCAN_PAUSE = 1.0
_MIN_SCAN_PAUSE = 0.01  # a retry due "now" must not turn the loop into a busy wait
_STOP_GRACE = 3.0
_users = User.ormar_config.table


@dataclass
class WorkerStats:
    done: int = 0
    not_found: int = 0
    failed: int = 0
    postponed: int = 0  # queued by the provider or not answered: asked again later
    recovered: int = 0  # due pending users picked up at start
    rescanned: int = 0  # due pending users found by a later scan (retries, others' leftovers)
    scans: int = 0  # looks at the database for due users, at start and since
    errors: int = 0  # our own failures (database), logged with a traceback
    superseded: int = 0  # answers dropped: another process had claimed a later attempt

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class EnrichmentWorker:
    def __init__(
        self,
        *,
        enricher: Enricher,
        referrals: ReferralService,
        retry_delay: float,
        max_attempts: int,
    ) -> None:
        self.enricher = enricher
        self.referrals = referrals
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.stats = WorkerStats()
        self._queue: asyncio.Queue[int | None] = asyncio.Queue()
        self._queued: set[int] = set()  # queued or being looked up by this process
        self._next_scan = 0.0  # loop time
        self._task: asyncio.Task[None] | None = None
        self._lookup: asyncio.Future[Enrichment] | None = None
        self._stopping = False

    def schedule(self, user_id: int) -> None:
        """Queue a lookup; returns at once (the sign-up does not wait for the provider)."""
        if user_id not in self._queued:
            self._queued.add(user_id)
            self._queue.put_nowait(user_id)

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="enrichment-worker")

    async def stop(self) -> None:
        """Stop promptly: a lookup in flight is abandoned; its user stays pending."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        if self._lookup is not None:
            self._lookup.cancel()
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(task, _STOP_GRACE)
        except TimeoutError:
            log.warning("enrichment worker did not stop within %.0fs; cancelled", _STOP_GRACE)
        # Anything still queued is pending in the database: the next start finds it.
        self._queue = asyncio.Queue()
        self._queued.clear()

    @property
    def scan_interval(self) -> float:
        return min(self.retry_delay, MAX_SCAN_INTERVAL)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await self._scan(at_start=True)
        while not self._stopping:
            timeout = self._next_scan - loop.time()
            if timeout <= 0:
                await self._scan(at_start=False)
                continue
            try:
                user_id = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                continue
            if user_id is None:
                break
            try:
                await self._enrich(user_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.errors += 1
                log.exception("enrichment of user %d failed; it stays pending", user_id)
            finally:
                self._queued.discard(user_id)

    async def _scan(self, *, at_start: bool) -> None:
        """Queue the pending users that are due, and plan the next scan.

        Two cheap indexed queries: the due users, and the earliest retry still to come, so
        that a known retry is not kept waiting for the next regular scan.
        """
        loop = asyncio.get_running_loop()
        self._next_scan = loop.time() + self.scan_interval
        now = clock.utcnow()
        pending = _users.c.enrichment_status == PENDING
        retry_at = _users.c.enrichment_retry_at
        due = sa.select(_users.c.id).where(pending, sa.or_(retry_at.is_(None), retry_at <= now))
        upcoming = sa.select(sa.func.min(retry_at)).where(pending, retry_at > now)
        try:
            async with database.connection() as connection:
                ids = (
                    (await connection.execute(due.order_by(_users.c.id).limit(SCAN_BATCH)))
                    .scalars()
                    .all()
                )
                next_retry = (await connection.execute(upcoming)).scalar()
        except Exception:
            self.stats.errors += 1
            log.exception("could not look for pending enrichments; will look again")
            return
        self.stats.scans += 1
        if next_retry is not None:
            wait = max((next_retry - now).total_seconds(), _MIN_SCAN_PAUSE)
            self._next_scan = min(self._next_scan, loop.time() + wait)
        if len(ids) == SCAN_BATCH:  # a backlog: look for the rest as this batch is claimed
            self._next_scan = min(self._next_scan, loop.time() + _BACKLOG_SCAN_PAUSE)
        found = [user_id for user_id in ids if user_id not in self._queued]
        for user_id in found:
            self.schedule(user_id)
        if at_start:
            self.stats.recovered += len(found)
            if found:
                log.info("re-queued %d pending enrichments", len(found))
        else:
            self.stats.rescanned += len(found)

    async def _enrich(self, user_id: int) -> None:
        user = await User.objects.get_or_none(id=user_id)
        if user is None or user.enrichment_status != PENDING:
            return
        if user.enrichment_retry_at is not None and user.enrichment_retry_at > clock.utcnow():
            return  # postponed meanwhile (by another process); a later scan finds it
        attempts = user.enrichment_attempts
        if user.email is None or attempts >= self.max_attempts:
            await self._settle(user_id, attempts=attempts, status=FAILED)
            return
        if not await self._claim(user_id, attempts=attempts):
            return  # another process took this attempt
        attempts += 1
        result = await self._find(user.email)
        if result is None:
            # Stopping: the claimed attempt is spent, but the lease goes, so the next start
            # (or another running process) asks at once.
            await self._reschedule(user_id, attempts=attempts, retry_at=None)
            return
        if result.outcome is Outcome.FOUND and result.profile is not None:
            settled = await self._settle(
                user_id, attempts=attempts, status=DONE, profile=result.profile
            )
            if settled and user.full_name is None and result.profile.full_name:
                await self.referrals.forget_owner(user)  # public views show the name
        elif result.outcome is Outcome.NOT_FOUND or result.outcome is Outcome.FAILED:
            status = NOT_FOUND if result.outcome is Outcome.NOT_FOUND else FAILED
            await self._settle(user_id, attempts=attempts, status=status)
        elif attempts >= self.max_attempts:
            log.warning("enrichment of user %d gave up after %d attempts", user_id, attempts)
            await self._settle(user_id, attempts=attempts, status=FAILED)
        else:
            await self._postpone(user_id, attempts=attempts)

    async def _find(self, email: str) -> Enrichment | None:
        lookup = self._lookup = asyncio.ensure_future(self.enricher.find(email))
        try:
            return await lookup
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping and not (task and task.cancelling()):
                return None
            raise
        finally:
            self._lookup = None

    def _delay(self, attempt: int) -> float:
        """How long after its `attempt`-th lookup a user waits: doubling, capped."""
        return min(self.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY)

    async def _postpone(self, user_id: int, *, attempts: int) -> None:
        """Store when to ask again, unless another process has claimed a later attempt."""
        delay = self._delay(attempts)
        retry_at = clock.utcnow() + dt.timedelta(seconds=delay)
        if await self._reschedule(user_id, attempts=attempts, retry_at=retry_at):
            self.stats.postponed += 1
            loop = asyncio.get_running_loop()
            self._next_scan = min(self._next_scan, loop.time() + delay)

    @staticmethod
    async def _reschedule(user_id: int, *, attempts: int, retry_at: dt.datetime | None) -> bool:
        return await _update_at_attempt(user_id, attempts, {"enrichment_retry_at": retry_at})

    async def _claim(self, user_id: int, *, attempts: int) -> bool:
        """Take the next attempt if it is still due and nobody took it.

        The claim also pushes `enrichment_retry_at` out by the retry delay, as a lease: other
        processes' scans leave a lookup in flight alone, and if this process dies mid-lookup
        the user is asked again when the lease runs out, as if the provider had not answered.
        """
        now = clock.utcnow()
        retry_at = _users.c.enrichment_retry_at
        return await _update_at_attempt(
            user_id,
            attempts,
            {
                "enrichment_attempts": attempts + 1,
                "enrichment_retry_at": now + dt.timedelta(seconds=self._delay(attempts + 1)),
            },
            sa.or_(retry_at.is_(None), retry_at <= now),
        )

    async def _settle(
        self, user_id: int, *, attempts: int, status: str, profile: Profile | None = None
    ) -> bool:
        """Store the outcome, unless another process has claimed a later attempt since."""
        values: dict[str, Any] = {
            "enrichment_status": status,
            "enriched_at": clock.utcnow(),
            "enrichment_retry_at": None,
        }
        if profile is not None:
            # The user's own name wins; the rest is what the provider knows.
            values["full_name"] = sa.func.coalesce(_users.c.full_name, profile.full_name)
            values.update(
                company=profile.company,
                job_title=profile.job_title,
                location=profile.location,
                avatar_url=profile.avatar_url,
            )
        settled = await _update_at_attempt(user_id, attempts, values)
        if settled:
            counter = {DONE: "done", NOT_FOUND: "not_found", FAILED: "failed"}[status]
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        else:
            self.stats.superseded += 1
        return settled


async def _update_at_attempt(
    user_id: int, attempts: int, values: dict[str, Any], *conditions: sa.ColumnElement[bool]
) -> bool:
    """Update a pending user only while it is still at `attempts` (and `conditions` hold):
    a process whose attempt was overtaken by another's changes nothing."""
    statement = (
        sa.update(_users)
        .where(
            _users.c.id == user_id,
            _users.c.enrichment_status == PENDING,
            _users.c.enrichment_attempts == attempts,
            *conditions,
        )
        .values(**values)
        .returning(_users.c.id)
    )
    async with database.transaction(), database.connection() as connection:
        return (await connection.execute(statement)).first() is not None
