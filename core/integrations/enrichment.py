"""Background enrichment of new profiles: a queue and one task, started and stopped with Core.

The database is the source of truth, not the queue: a user waits with
`enrichment_status = "pending"` until a lookup settles it, so whatever a stopped process
had queued is found again by the next start. Each lookup first claims the row with a
conditional UPDATE on `enrichment_attempts`, so two processes never both store a result
for the same attempt, and a crash mid-lookup costs one attempt, not the user.
"""

from __future__ import annotations

import asyncio
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
_STOP_GRACE = 3.0
_users = User.ormar_config.table


@dataclass
class WorkerStats:
    done: int = 0
    not_found: int = 0
    failed: int = 0
    postponed: int = 0  # queued by the provider or not answered: asked again later
    recovered: int = 0  # pending users picked up at start
    errors: int = 0  # our own failures (database), logged with a traceback

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
        self._queued: set[int] = set()
        self._timers: set[asyncio.TimerHandle] = set()
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
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
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

    async def _run(self) -> None:
        await self._recover()
        while not self._stopping:
            user_id = await self._queue.get()
            if user_id is None:
                break
            self._queued.discard(user_id)
            try:
                await self._enrich(user_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.errors += 1
                log.exception("enrichment of user %d failed; it stays pending", user_id)

    async def _recover(self) -> None:
        """Queue every user a previous run left pending."""
        query = sa.select(_users.c.id).where(_users.c.enrichment_status == PENDING)
        try:
            async with database.connection() as connection:
                ids = (await connection.execute(query.order_by(_users.c.id))).scalars().all()
        except Exception:
            self.stats.errors += 1
            log.exception("could not look for pending enrichments; they wait for a restart")
            return
        for user_id in ids:
            self.schedule(user_id)
        self.stats.recovered += len(ids)
        if ids:
            log.info("re-queued %d pending enrichments", len(ids))

    async def _enrich(self, user_id: int) -> None:
        user = await User.objects.get_or_none(id=user_id)
        if user is None or user.enrichment_status != PENDING:
            return
        attempts = user.enrichment_attempts
        if user.email is None or attempts >= self.max_attempts:
            await self._settle(user_id, attempts=attempts, status=FAILED)
            return
        if not await self._claim(user_id, attempts=attempts):
            return  # another process took this attempt
        attempts += 1
        result = await self._find(user.email)
        if result is None:
            return  # stopping; the claimed attempt is simply spent
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
            self.stats.postponed += 1
            self._retry_later(user_id, attempts=attempts)

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

    def _retry_later(self, user_id: int, *, attempts: int) -> None:
        delay = min(self.retry_delay * 2 ** (attempts - 1), MAX_RETRY_DELAY)
        timer: asyncio.TimerHandle

        def requeue() -> None:
            self._timers.discard(timer)
            if not self._stopping:
                self.schedule(user_id)

        timer = asyncio.get_running_loop().call_later(delay, requeue)
        self._timers.add(timer)

    @staticmethod
    async def _claim(user_id: int, *, attempts: int) -> bool:
        statement = (
            sa.update(_users)
            .where(
                _users.c.id == user_id,
                _users.c.enrichment_status == PENDING,
                _users.c.enrichment_attempts == attempts,
            )
            .values(enrichment_attempts=attempts + 1)
            .returning(_users.c.id)
        )
        async with database.transaction(), database.connection() as connection:
            return (await connection.execute(statement)).first() is not None

    async def _settle(
        self, user_id: int, *, attempts: int, status: str, profile: Profile | None = None
    ) -> bool:
        """Store the outcome, unless another process has claimed a later attempt since."""
        values: dict[str, Any] = {"enrichment_status": status, "enriched_at": clock.utcnow()}
        if profile is not None:
            # The user's own name wins; the rest is what the provider knows.
            values["full_name"] = sa.func.coalesce(_users.c.full_name, profile.full_name)
            values.update(
                company=profile.company,
                job_title=profile.job_title,
                location=profile.location,
                avatar_url=profile.avatar_url,
            )
        statement = (
            sa.update(_users)
            .where(
                _users.c.id == user_id,
                _users.c.enrichment_status == PENDING,
                _users.c.enrichment_attempts == attempts,
            )
            .values(**values)
            .returning(_users.c.id)
        )
        async with database.transaction(), database.connection() as connection:
            settled = (await connection.execute(statement)).first() is not None
        if settled:
            counter = {DONE: "done", NOT_FOUND: "not_found", FAILED: "failed"}[status]
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        return settled
