"""The core, assembled once per process and handed to a front (API app, bot dispatcher).

Building it starts nothing: background work runs in the process that owns it (`worker`), the
API's in-process worker, `make worker` replicas, or the bot for chat messages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.accounts.flows import Accounts
from core.auth.service import AuthService
from core.campaigns.service import Campaigns
from core.campaigns.tables import TELEGRAM_CHAT
from core.infra import db
from core.infra.cache import CodeCache, build_cache
from core.infra.mail import build_mailer
from core.infra.ratelimit import RateLimiter, build_counters, build_limiter
from core.infra.settings import Settings
from core.integrations.enrichment import ENRICHMENT, enrichment_schedule
from core.integrations.providers import Integrations, build_integrations
from core.invites.service import Invites
from core.jobs.errors import JobNotFailed, JobNotFound, RetryItsDelivery
from core.jobs.queue import ClaimedJob, JobQueue, RetrySchedule
from core.jobs.worker import GiveUp, Handler, JobKind, Worker
from core.operators.service import Operator, OperatorService
from core.program.conversions import Conversions
from core.program.opens import LinkOpens
from core.program.review import Review
from core.program.rewards import Rewards
from core.program.stats import ProgramStats
from core.referrals.service import ReferralService
from core.referrals.views import PublicViews
from core.telegram.joins import TELEGRAM_JOIN_DECISION, TELEGRAM_STAY
from core.telegram.service import TELEGRAM_MESSAGE, TelegramService
from core.users.service import UserService
from core.webhooks.sender import Sender
from core.webhooks.service import WEBHOOK_DELIVERY, WebhookService

log = logging.getLogger(__name__)

# The job kinds only the bot's process runs (chat messages, and the growth of a campaign's
# chat: stays checked, join requests decided, a changed campaign's chat checked).
BOT_JOBS = (TELEGRAM_MESSAGE, TELEGRAM_STAY, TELEGRAM_JOIN_DECISION, TELEGRAM_CHAT)


@dataclass
class Core:
    settings: Settings
    cache: CodeCache
    jobs: JobQueue
    referrals: ReferralService
    views: PublicViews  # the hot read path: the public views of codes
    users: UserService
    accounts: Accounts
    auth: AuthService
    telegram: TelegramService
    operators: OperatorService
    webhooks: WebhookService
    review: Review
    rewards: Rewards
    conversions: Conversions
    campaigns: Campaigns
    invites: Invites
    stats: ProgramStats
    link_opens: LinkOpens
    kinds: dict[str, JobKind] = field(default_factory=dict)
    limiter: RateLimiter = field(default_factory=RateLimiter.disabled)
    integrations: Integrations = field(default_factory=Integrations)
    _connected: bool = field(default=False, repr=False)

    async def start(self) -> None:
        if not db.database.is_connected:
            await db.database.connect()
            self._connected = True
            if db.is_sqlite():
                # Readers do not wait for writers, so the API and the bot share a file well.
                async with db.database.connection() as connection:
                    await connection.exec_driver_sql("PRAGMA journal_mode=WAL")

    async def stop(self) -> None:
        await self.webhooks.sender.close()
        await self.integrations.stop()
        await self.cache.close()
        await self.limiter.close()
        await self.link_opens.close()
        if self._connected:
            await db.database.disconnect()
            self._connected = False

    async def database_ok(self) -> bool:
        """Whether the database answers, decided within the readiness bound."""
        return await self.oldest_due_job() is not None

    async def oldest_due_job(self) -> float | None:
        """How long the earliest due job has waited, in seconds; None when the database does
        not answer within the readiness bound (the query is the database check too)."""
        try:
            async with asyncio.timeout(self.settings.database.ready_timeout_seconds):
                return await self.jobs.oldest_due_seconds()
        except Exception as exc:
            log.warning("database check failed: %r", exc)
            return None

    async def retry_job(self, *, operator: Operator, job_id: int) -> None:
        """Queue a failed job again (its attempts from zero). A webhook delivery's job is
        retried through its delivery, whose state the job carries out."""
        if not db.is_valid_id(job_id):
            raise JobNotFound()
        async with db.database.transaction():
            kind = await self.jobs.kind_of(job_id)
            if kind is None:
                raise JobNotFound()
            if kind == WEBHOOK_DELIVERY:
                raise RetryItsDelivery()
            if not await self.jobs.retry(job_id):
                raise JobNotFailed()
            await self.operators.record(
                operator=operator, action="job.retried", target=f"job:{job_id} ({kind})"
            )

    def handlers(self) -> dict[str, Handler]:
        """The job kinds any worker of the core runs: all but chat messages, which only a
        process holding the bot token sends."""
        return {name: kind.handler for name, kind in self.kinds.items() if kind.handler}

    def worker(self, handlers: Mapping[str, Handler] | None = None) -> Worker:
        """A worker of these kinds (the core's own by default), with the settings' bounds; it
        also removes finished jobs and deliveries past their retention."""
        jobs = self.settings.jobs
        retention = dt.timedelta(days=jobs.retention_days)
        return Worker(
            queue=self.jobs,
            handlers=handlers if handlers is not None else self.handlers(),
            on_final_failure={
                name: kind.on_final_failure
                for name, kind in self.kinds.items()
                if kind.on_final_failure is not None
            },
            concurrency=jobs.concurrency,
            poll_seconds=jobs.poll_seconds,
            lease_seconds=jobs.lease_seconds,
            grace_seconds=jobs.grace_seconds,
            housekeeping=(
                lambda: self.jobs.purge(older_than=retention),
                lambda: self.webhooks.purge(older_than=retention),
                self.invites.purge_updates,
            ),
        )


def _switched_off(what: str) -> Handler:
    async def handler(job: ClaimedJob) -> None:
        raise GiveUp(f"{what} is not configured in this process")

    return handler


def build_jobs(settings: Settings) -> JobQueue:
    """The queue, with the default schedule; each kind declares its own (`job_kinds`)."""
    return JobQueue(default_schedule=RetrySchedule.parse(settings.jobs.retry_schedule))


def job_kinds(
    settings: Settings,
    *,
    jobs: JobQueue,
    auth: AuthService,
    webhooks: WebhookService,
    integrations: Integrations,
    rewards: Rewards,
) -> dict[str, JobKind]:
    """Every kind of job, each declared beside its handler, with its schedule from settings;
    the queue learns each schedule here."""
    retry = settings.integrations
    enrichment_retries = enrichment_schedule(
        retry_seconds=retry.enrichment_retry_seconds, max_attempts=retry.enrichment_max_attempts
    )
    enrichment = integrations.enrichment
    kinds = (
        auth.mail_kind(jobs.default_schedule),
        rewards.release_kind(jobs.default_schedule),
        webhooks.delivery_kind(RetrySchedule.parse(settings.webhooks.retry_schedule)),
        enrichment.kind(enrichment_retries)
        if enrichment is not None
        else JobKind(ENRICHMENT, enrichment_retries, _switched_off("Clearbit")),
        # The bot's process runs these with its own handlers: it holds the token.
        *(JobKind(name, jobs.default_schedule) for name in BOT_JOBS),
    )
    for kind in kinds:
        jobs.declare(kind.name, kind.schedule)
    return {kind.name: kind for kind in kinds}


def build_core(settings: Settings) -> Core:
    db.database.configure(settings.database_url, settings.database)
    cache = build_cache(settings.redis_url, timeout=settings.cache.redis_timeout_seconds)
    jobs = build_jobs(settings)
    telegram = TelegramService(
        bot_username=settings.telegram.bot_username,
        link_lifetime=dt.timedelta(minutes=settings.telegram.link_minutes),
    )
    operators = OperatorService()
    webhooks = WebhookService(
        jobs=jobs,
        operators=operators,
        disable_after_failures=settings.webhooks.disable_after_failures,
        sender=Sender(
            timeout=settings.webhooks.timeout_seconds,
            allow_private_networks=settings.webhooks.allow_private_networks,
        ),
    )
    views = PublicViews(
        cache=cache, ttl=settings.cache.ttl_seconds, missing_ttl=settings.cache.missing_ttl_seconds
    )
    referrals = ReferralService(
        views=views,
        events=webhooks,
        deep_link=telegram.deep_link,
    )
    campaigns = Campaigns(
        settings=settings.program, events=webhooks, operators=operators, jobs=jobs
    )
    rewards = Rewards(events=webhooks, operators=operators, jobs=jobs)
    review = Review(
        jobs=jobs,
        events=webhooks,
        operators=operators,
        referrals=referrals,
        rewards=rewards,
        campaigns=campaigns,
    )
    conversions = Conversions(jobs=jobs, events=webhooks, rewards=rewards, campaigns=campaigns)
    integrations = build_integrations(settings.integrations, referrals=referrals, jobs=jobs)
    auth = AuthService(
        settings.auth,
        jobs=jobs,
        mailer=build_mailer(settings.mail),
        mail_timeout=settings.mail.smtp_timeout_seconds,
        public_base_url=settings.mail.public_base_url,
    )
    users = UserService()
    stats = ProgramStats()
    kinds = job_kinds(
        settings,
        jobs=jobs,
        auth=auth,
        webhooks=webhooks,
        integrations=integrations,
        rewards=rewards,
    )
    accounts = Accounts(
        users=users,
        auth=auth,
        referrals=referrals,
        campaigns=campaigns,
        review=review,
        jobs=jobs,
        events=webhooks,
        verifier=integrations.verifier,
        enrichment=integrations.enrichment,
        welcome=auth.send_verification,
    )
    return Core(
        kinds=kinds,
        settings=settings,
        cache=cache,
        jobs=jobs,
        referrals=referrals,
        views=views,
        users=users,
        accounts=accounts,
        auth=auth,
        integrations=integrations,
        limiter=build_limiter(settings),
        telegram=telegram,
        operators=operators,
        webhooks=webhooks,
        review=review,
        rewards=rewards,
        conversions=conversions,
        campaigns=campaigns,
        invites=Invites(
            campaigns=campaigns,
            accounts=accounts,
            referrals=referrals,
            conversions=conversions,
            jobs=jobs,
        ),
        stats=stats,
        link_opens=LinkOpens(
            stats=stats,
            flush_seconds=settings.program.link_opens_flush_seconds,
            repeats=build_counters(settings),
            repeat_seconds=settings.program.link_open_repeat_seconds,
        ),
    )
