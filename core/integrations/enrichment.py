"""Profile enrichment after sign-up: a job of kind `ENRICHMENT` per new user.

The sign-up queues the job in its own transaction and never waits for the provider. A lookup
the provider queued (202) or could not answer is tried again on the job's schedule (doubling
from `ENRICHMENT_RETRY_SECONDS`, `ENRICHMENT_MAX_ATTEMPTS` in all); after the last one the
user is `failed`. Storing an outcome is one conditional UPDATE of a still-pending user, so a
job that runs twice (its worker died after the lookup) changes nothing the second time.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from core.infra import clock
from core.infra.db import database, execute, is_valid_id
from core.integrations.base import Enricher, Outcome, Profile
from core.jobs.queue import ClaimedJob, JobQueue, RetrySchedule
from core.jobs.worker import GiveUp, JobKind, RetryLater
from core.referrals.service import ReferralService
from core.users.models import User

log = logging.getLogger(__name__)

ENRICHMENT = "enrichment"
PENDING = "pending"
DONE = "done"
NOT_FOUND = "not_found"
FAILED = "failed"
MAX_RETRY_DELAY = 3600.0
_users = User.ormar_config.table


def enrichment_schedule(*, retry_seconds: float, max_attempts: int) -> RetrySchedule:
    return RetrySchedule.doubling(retry_seconds, attempts=max_attempts, cap=MAX_RETRY_DELAY)


class EnrichmentJobs:
    """Queues lookups (`schedule`) and runs them (`run`, the job handler)."""

    def __init__(self, *, enricher: Enricher, referrals: ReferralService, jobs: JobQueue) -> None:
        self.enricher = enricher
        self.referrals = referrals
        self.jobs = jobs

    def kind(self, schedule: RetrySchedule) -> JobKind:
        return JobKind(ENRICHMENT, schedule, self.run, on_final_failure=self.failed)

    async def schedule(self, user_id: int) -> None:
        await self.jobs.enqueue(ENRICHMENT, {"user_id": user_id})

    @staticmethod
    async def failed(job: ClaimedJob, error: str) -> None:
        """The job failed for good, whichever way (a worker that died during the last attempt
        included): a user still pending is settled as failed, never left pending."""
        user_id = job.payload.get("user_id")
        if isinstance(user_id, int) and is_valid_id(user_id):
            await _settle(user_id, attempts=job.attempt, status=FAILED)

    async def run(self, job: ClaimedJob) -> None:
        user_id = job.payload.get("user_id")
        if not isinstance(user_id, int):
            raise GiveUp("no user id in the job")
        user = await User.objects.get_or_none(id=user_id)
        if user is None or user.enrichment_status != PENDING:
            return  # erased, or settled by an earlier run of this job
        if user.email is None:
            await _settle(user_id, attempts=job.attempt, status=FAILED)
            return
        result = await self.enricher.find(user.email)
        if result.outcome is Outcome.FOUND and result.profile is not None:
            settled = await _settle(
                user_id, attempts=job.attempt, status=DONE, profile=result.profile
            )
            if settled and user.full_name is None and result.profile.full_name:
                await self.referrals.views.forget_owner(user)  # public views show the name
        elif result.outcome in (Outcome.NOT_FOUND, Outcome.FAILED):
            status = NOT_FOUND if result.outcome is Outcome.NOT_FOUND else FAILED
            await _settle(user_id, attempts=job.attempt, status=status)
        elif job.is_last_attempt:
            log.warning("enrichment of user %d gave up after %d attempts", user_id, job.attempt)
            await _settle(user_id, attempts=job.attempt, status=FAILED)
        else:
            await _pending(user_id, attempts=job.attempt)
            raise RetryLater(f"the provider answered {result.outcome.value}")


async def _pending(user_id: int, *, attempts: int) -> None:
    await _update_pending(user_id, {"enrichment_attempts": attempts})


async def _settle(
    user_id: int, *, attempts: int, status: str, profile: Profile | None = None
) -> bool:
    """Store the outcome of a still-pending user; False when it was settled already."""
    values: dict[str, Any] = {
        "enrichment_status": status,
        "enrichment_attempts": attempts,
        "enriched_at": clock.utcnow(),
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
    return await _update_pending(user_id, values)


async def _update_pending(user_id: int, values: dict[str, Any]) -> bool:
    statement = (
        sa.update(_users)
        .where(_users.c.id == user_id, _users.c.enrichment_status == PENDING)
        .values(**values)
        .returning(_users.c.id)
    )
    async with database.transaction(), database.connection() as connection:
        return (await execute(connection, statement)).first() is not None
