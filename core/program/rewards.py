"""The ledger: a referral's rewards, each once; balances that never go below zero; a user's
page of rewards; operators' adjustments (a redemption, a refund, a correction)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.infra import clock
from core.infra.db import database, execute, increment, insert_new, is_valid_id
from core.infra.events import Events
from core.infra.pagination import newest_first
from core.infra.settings import ProgramSettings
from core.operators.service import Operator, OperatorService
from core.program import counters
from core.program.errors import (
    InsufficientBalance,
)
from core.program.items import (
    ADJUSTMENT,
    REFERRAL_QUALIFIED,
    REFERRED_SIGNUP_BONUS,
    REWARD_COLUMNS,
    Reward,
    RewardPage,
    Subject,
    live_user_id,
    reward_of,
)
from core.program.tables import (
    reward_balances,
    rewards,
)
from core.users.errors import UserNotFound


class Rewards:
    def __init__(
        self, *, settings: ProgramSettings, events: Events, operators: OperatorService
    ) -> None:
        self.settings = settings
        self.events = events
        self.operators = operators

    async def grant(
        self, connection: Any, subject: Subject, *, conversion_id: int | None
    ) -> list[Reward]:
        """The referral's rewards, each once (the unique index decides under races). A side
        that is blocked or erased at that moment earns nothing, and never will for this
        referral: unblocking grants nothing after the fact."""
        item = subject.item
        now = clock.utcnow()
        due = [
            {
                "user_id": user_id,
                "points": points,
                "reason": reason,
                "referral_id": item.id,
                "conversion_id": conversion_id,
                "created_at": now,
            }
            for user_id, points, reason, earns in (
                (
                    item.referrer_id,
                    self.settings.reward_referrer_points,
                    REFERRAL_QUALIFIED,
                    subject.referrer_earns,
                ),
                (item.id, self.settings.reward_friend_points, REFERRED_SIGNUP_BONUS, subject.earns),
            )
            if points > 0 and earns
        ]
        if not due:
            return []
        # One statement for both sides; a reward granted before is not returned again.
        rows = await insert_new(
            connection,
            rewards,
            due,
            unique=("referral_id", "reason"),
            where=rewards.c.referral_id.is_not(None),
            returning=tuple(column.key for column in REWARD_COLUMNS),
        )
        granted = sorted((reward_of(row) for row in rows), key=lambda reward: reward.id)
        for reward in granted:
            await self.credit(connection, reward.user_id, reward.points)
            await self.events.emit("reward.granted", reward)
        return granted

    @staticmethod
    async def credit(connection: Any, user_id: int, points: int) -> None:
        """Move a balance by `points` (the CHECK refuses a balance below zero)."""
        if points > 0:
            increment(reward_balances, {"user_id": user_id}, balance=points)
        else:  # an upsert would check its would-be new row (negative) first
            moved = (
                await execute(
                    connection,
                    sa.update(reward_balances)
                    .where(reward_balances.c.user_id == user_id)
                    .values(balance=reward_balances.c.balance + points),
                )
            ).rowcount
            if not moved:
                raise InsufficientBalance()  # nothing to take from
        counters.program(rewards_points=points)

    # -- rewards --------------------------------------------------------------------------

    async def page(self, *, user_id: int, limit: int, cursor: str | None) -> RewardPage:
        if not is_valid_id(user_id):
            raise UserNotFound()
        statement = sa.select(*REWARD_COLUMNS).where(rewards.c.user_id == user_id)
        rows, next_cursor = await newest_first(statement, rewards.c.id, limit=limit, cursor=cursor)
        async with database.connection() as connection:
            balance = await _balance(connection, user_id)
        return RewardPage(balance, [reward_of(row) for row in rows], next_cursor)

    async def adjust(self, *, operator: Operator, user_id: int, points: int, note: str) -> Reward:
        """A redemption, refund or correction: a ledger row; the balance never below zero."""
        await live_user_id(user_id=user_id, email=None)
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
                            note=note,
                            created_at=clock.utcnow(),
                        )
                        .returning(*REWARD_COLUMNS),
                    )
                ).one()
                await self.credit(connection, user_id, points)
                reward = reward_of(row)
                await self.events.emit("reward.granted", reward)
                await self.operators.record(
                    operator=operator,
                    action="reward.adjusted",
                    target=f"user:{user_id} ({points:+d})",
                )
        except IntegrityError:
            raise InsufficientBalance() from None
        return reward


async def _balance(connection: Any, user_id: int) -> int:
    balance = (
        await execute(
            connection,
            sa.select(reward_balances.c.balance).where(reward_balances.c.user_id == user_id),
        )
    ).scalar()
    return int(balance or 0)
