"""The ledger: a qualification's rewards by its campaign's rules, each once; the hold they
wait out (`pending` until a job at `available_at` makes them `available`); revoking what a
refund takes back; balances that never go below zero; a user's page of rewards; operators'
adjustments (a redemption, a refund, a correction)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.campaigns.service import Campaign
from core.campaigns.tables import DEFAULT_ID, DEFAULT_KEY, campaigns
from core.infra import clock
from core.infra.db import database, execute, execute_built, increment, insert_new, is_valid_id
from core.infra.events import Events
from core.infra.pagination import newest_first
from core.jobs.queue import ClaimedJob, JobQueue, RetrySchedule
from core.jobs.worker import GiveUp, JobKind, RetryLater
from core.operators.service import Operator, OperatorService
from core.program import counters
from core.program.errors import InsufficientBalance
from core.program.items import (
    ADJUSTMENT,
    MILESTONE,
    REFERRAL_QUALIFIED,
    REFERRED_SIGNUP_BONUS,
    REWARD_AVAILABLE_MESSAGE,
    REWARD_COLUMNS,
    REWARDS,
    Reward,
    RewardPage,
    Subject,
    live_user_id,
    reward_of,
)
from core.program.tables import (
    AVAILABLE,
    PENDING,
    REVOKED,
    conversions,
    referrer_campaigns,
    reward_balances,
    rewards,
)
from core.referrals.tables import referrals
from core.telegram.service import TelegramService
from core.users.errors import UserNotFound
from core.users.models import User

RELEASE = "reward.release"  # the job that ends a hold
# The grant's statements, built once (building one costs about what running it does).
_REWARDED = (
    sa.update(referrals)
    .where(referrals.c.id == sa.bindparam("referral"))
    .values(rewarded_at=sa.bindparam("now"))
)
_CAPPED = (
    sa.update(conversions).where(conversions.c.id == sa.bindparam("conversion")).values(capped=True)
)
_BUMP = (
    sa.update(referrer_campaigns)
    .where(
        referrer_campaigns.c.referrer_id == sa.bindparam("referrer"),
        referrer_campaigns.c.campaign_id == sa.bindparam("campaign"),
    )
    .values(qualified=referrer_campaigns.c.qualified + sa.bindparam("by"))
    .returning(referrer_campaigns.c.qualified)
)
_RETURNED = tuple(column.key for column in REWARD_COLUMNS)
_users = User.ormar_config.table


@dataclass(frozen=True, slots=True)
class Grant:
    rewards: list[Reward]
    capped: bool  # past the campaign's cap: the referral qualified, nothing was granted


class Rewards:
    def __init__(self, *, events: Events, operators: OperatorService, jobs: JobQueue) -> None:
        self.events = events
        self.operators = operators
        self.jobs = jobs

    async def grant(
        self,
        connection: Any,
        subject: Subject,
        *,
        campaign: Campaign,
        conversion_id: int,
        amount: Decimal | None,
    ) -> Grant:
        """A qualification's rewards by the campaign's rules, each once (unique by conversion
        and reason; a milestone by referrer, campaign and count). One referrer's
        qualifications in a campaign queue on their `referrer_campaigns` row, so the cap and
        the milestone count are exact under races. A side that is blocked or erased at that
        moment earns nothing, and never will for this qualification."""
        item, rules = subject.item, campaign.rules
        now = clock.utcnow()
        qualified = await count_qualification(connection, item.referrer_id, campaign.id, 1)
        capped = rules.cap is not None and (
            await _rewarded_since(
                connection,
                item.referrer_id,
                campaign.id,
                since=now - dt.timedelta(days=rules.cap.days),
                limit=rules.cap.rewards,
            )
            >= rules.cap.rewards
        )
        due: list[tuple[int, int, str, int | None]] = []  # user, points, reason, milestone
        if not capped:
            if subject.referrer_earns:
                due.append(
                    (item.referrer_id, rules.referrer_reward(amount), REFERRAL_QUALIFIED, None)
                )
            if subject.earns:
                due.append((item.id, rules.friend_points, REFERRED_SIGNUP_BONUS, None))
        milestone = rules.milestone_at(qualified)
        if milestone is not None and subject.referrer_earns:
            due.append((item.referrer_id, milestone.points, MILESTONE, milestone.qualified))
        if capped:
            await execute_built(connection, _CAPPED, {"conversion": conversion_id})
        else:
            await execute_built(connection, _REWARDED, {"referral": item.id, "now": now})
            counters.campaign(campaign.id, counters.day_of(now), rewarded=1)
        status = PENDING if rules.hold_days else AVAILABLE
        rows = [
            {
                "user_id": user_id,
                "points": points,
                "reason": reason,
                "status": status,
                "referral_id": item.id,
                "conversion_id": conversion_id,
                "campaign_id": campaign.id,
                "milestone": count,
                "created_at": now,
                "available_at": now + dt.timedelta(days=rules.hold_days),
            }
            for user_id, points, reason, count in due
            if points > 0
        ]
        granted: list[Reward] = []
        once = [row for row in rows if row["milestone"] is None]
        bonuses = [row for row in rows if row["milestone"] is not None]
        # One statement for both sides; a reward granted before is not returned again.
        if once:
            granted += await _insert(connection, once, ("conversion_id", "reason"), campaign.key)
        if bonuses:
            granted += await _insert(
                connection, bonuses, ("user_id", "campaign_id", "milestone"), campaign.key
            )
        for reward in granted:
            await self.credit(connection, reward.user_id, reward.points, pending=status == PENDING)
            await self.events.emit("reward.granted", reward)
            if reward.reason == MILESTONE:
                await self.events.emit("milestone.reached", reward)
        if granted:
            counters.campaign(
                campaign.id, counters.day_of(now), points_granted=sum(r.points for r in granted)
            )
        if status == PENDING and granted:
            await self.jobs.enqueue(
                RELEASE,
                {"reward_ids": [reward.id for reward in granted]},
                delay=rules.hold_days * 86400,
            )
        return Grant(granted, capped)

    async def revoke(self, connection: Any, *, conversion_id: int) -> list[Reward]:
        """Inside the caller's transaction (a refund): the conversion's rewards still in hold
        are revoked, once (a release racing this is one or the other)."""
        now = clock.utcnow()
        rows = (
            await execute(
                connection,
                sa.update(rewards)
                .where(rewards.c.conversion_id == conversion_id, rewards.c.status == PENDING)
                .values(status=REVOKED, revoked_at=now)
                .returning(*REWARD_COLUMNS),
            )
        ).all()
        if not rows:
            return []
        revoked = await _with_campaigns(connection, rows)
        for reward in revoked:
            await _move(connection, reward.user_id, pending=-reward.points)
            await self.events.emit("reward.revoked", reward)
        counters.campaign(
            rows[0].campaign_id,
            counters.day_of(now),
            points_revoked=sum(reward.points for reward in revoked),
        )
        counters.program(rewards_points=-sum(reward.points for reward in revoked))
        return revoked

    @staticmethod
    async def credit(connection: Any, user_id: int, points: int, *, pending: bool = False) -> None:
        """Move a balance (or, `pending`, the points in hold) by `points`; the CHECK refuses a
        balance below zero."""
        if points > 0:
            increment(
                reward_balances,
                {"user_id": user_id},
                **{"pending" if pending else "balance": points},
            )
        else:  # an upsert would check its would-be new row (negative) first
            await _move(connection, user_id, balance=points)
        counters.program(rewards_points=points)

    # -- the hold -------------------------------------------------------------------------

    def release_kind(self, schedule: RetrySchedule) -> JobKind:
        return JobKind(RELEASE, schedule, self.release)

    async def release(self, job: ClaimedJob) -> None:
        """The job handler: rewards whose hold is over become available, once (a refund
        racing this is one or the other); `reward.available` goes out and the user is told
        in chat."""
        ids = job.payload.get("reward_ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and is_valid_id(i) for i in ids):
            raise GiveUp("no rewards to release")
        now = clock.utcnow()
        async with database.transaction(), database.connection() as connection:
            rows = (
                await execute(
                    connection,
                    sa.update(rewards)
                    .where(
                        rewards.c.id.in_(ids),
                        rewards.c.status == PENDING,
                        rewards.c.available_at <= now,
                    )
                    .values(status=AVAILABLE)
                    .returning(*REWARD_COLUMNS),
                )
            ).all()
            released = await _with_campaigns(connection, rows) if rows else []
            for reward in released:
                await _move(
                    connection, reward.user_id, balance=reward.points, pending=-reward.points
                )
                await self.events.emit("reward.available", reward)
            chats = (
                {
                    row.id
                    for row in (
                        await execute(
                            connection,
                            sa.select(_users.c.id).where(
                                _users.c.id.in_({reward.user_id for reward in released}),
                                _users.c.telegram_id.is_not(None),
                            ),
                        )
                    ).all()
                }
                if released
                else set()
            )
            for user_id in chats:
                mine = [reward for reward in released if reward.user_id == user_id]
                await TelegramService.notify(
                    jobs=self.jobs,
                    recipient_id=user_id,
                    message=REWARD_AVAILABLE_MESSAGE,
                    points=sum(reward.points for reward in mine),
                    campaign=mine[0].campaign,
                )
            early = (
                await execute(
                    connection,
                    sa.select(sa.func.min(rewards.c.available_at)).where(
                        rewards.c.id.in_(ids), rewards.c.status == PENDING
                    ),
                )
            ).scalar()
        if early is not None:  # due later than this attempt (a clock ahead of the database's)
            raise RetryLater("hold not over", after=max((early - now).total_seconds(), 1.0))

    # -- rewards --------------------------------------------------------------------------

    async def page(self, *, user_id: int, limit: int, cursor: str | None) -> RewardPage:
        if not is_valid_id(user_id):
            raise UserNotFound()
        statement = REWARDS.where(rewards.c.user_id == user_id)
        rows, next_cursor = await newest_first(statement, rewards.c.id, limit=limit, cursor=cursor)
        balance, pending = await balances(user_id)
        return RewardPage(balance, pending, [reward_of(row) for row in rows], next_cursor)

    async def adjust(self, *, operator: Operator, user_id: int, points: int, note: str) -> Reward:
        """A redemption, refund or correction: a ledger row in the default campaign; it
        spends only the available balance, never below zero."""
        await live_user_id(user_id=user_id, email=None)
        now = clock.utcnow()
        try:
            async with database.transaction(), database.connection() as connection:
                row = (
                    await execute(
                        connection,
                        sa.insert(rewards)
                        .values(
                            user_id=user_id,
                            points=points,
                            reason=ADJUSTMENT,
                            status=AVAILABLE,
                            campaign_id=DEFAULT_ID,
                            note=note,
                            created_at=now,
                            available_at=now,
                        )
                        .returning(*REWARD_COLUMNS),
                    )
                ).one()
                await self.credit(connection, user_id, points)
                reward = reward_of(row, DEFAULT_KEY)
                await self.events.emit("reward.granted", reward)
                await self.operators.record(
                    operator=operator,
                    action="reward.adjusted",
                    target=f"user:{user_id} ({points:+d})",
                )
        except IntegrityError:
            raise InsufficientBalance() from None
        return reward


async def balances(user_id: int) -> tuple[int, int]:
    """The user's available balance and points in hold."""
    async with database.connection() as connection:
        row = (
            await execute(
                connection,
                sa.select(reward_balances.c.balance, reward_balances.c.pending).where(
                    reward_balances.c.user_id == user_id
                ),
            )
        ).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def _insert(
    connection: Any, rows: list[dict[str, Any]], unique: tuple[str, ...], campaign: str
) -> list[Reward]:
    inserted = await insert_new(connection, rewards, rows, unique=unique, returning=_RETURNED)
    return sorted((reward_of(row, campaign) for row in inserted), key=lambda r: r.id)


async def _with_campaigns(connection: Any, rows: Any) -> list[Reward]:
    """Rewards an UPDATE returned, with their campaigns' keys."""
    ids = {row.campaign_id for row in rows}
    keys = dict(
        (
            await execute(
                connection,
                sa.select(campaigns.c.id, campaigns.c.key).where(campaigns.c.id.in_(ids)),
            )
        ).all()
    )
    return sorted((reward_of(row, keys[row.campaign_id]) for row in rows), key=lambda r: r.id)


async def _move(connection: Any, user_id: int, *, balance: int = 0, pending: int = 0) -> None:
    """Move a user's balances now (a decrease: the CHECKs hold them at zero or above)."""
    moved = (
        await execute(
            connection,
            sa.update(reward_balances)
            .where(reward_balances.c.user_id == user_id)
            .values(
                balance=reward_balances.c.balance + balance,
                pending=reward_balances.c.pending + pending,
            ),
        )
    ).rowcount
    if not moved:
        raise InsufficientBalance()  # nothing to take from


async def count_qualification(connection: Any, referrer_id: int, campaign_id: int, by: int) -> int:
    """Move the referrer's rewarded-qualification count in the campaign; returns it. The
    row stays locked to the end of the transaction: the referrer's next qualification in
    this campaign waits for this one."""
    for _ in range(2):
        row = (
            await execute_built(
                connection,
                _BUMP,
                {"referrer": referrer_id, "campaign": campaign_id, "by": by},
            )
        ).first()
        if row is not None:
            return int(row[0])
        try:
            async with connection.begin_nested():
                await execute(
                    connection,
                    sa.insert(referrer_campaigns).values(
                        referrer_id=referrer_id, campaign_id=campaign_id, qualified=max(by, 0)
                    ),
                )
            return max(by, 0)
        except IntegrityError:  # another qualification made the row first: bump it
            continue
    raise RuntimeError("referrer_campaigns row neither found nor made")


async def _rewarded_since(
    connection: Any, referrer_id: int, campaign_id: int, *, since: dt.datetime, limit: int
) -> int:
    """How many of the referrer's referrals in the campaign were rewarded since `since`,
    counted up to `limit` (a range of ix_referrals_rewarded)."""
    recent = (
        sa.select(referrals.c.id)
        .where(
            referrals.c.referrer_id == referrer_id,
            referrals.c.campaign_id == campaign_id,
            referrals.c.rewarded_at > since,
        )
        .limit(limit)
        .subquery()
    )
    return int(
        (await execute(connection, sa.select(sa.func.count()).select_from(recent))).scalar_one()
    )
