"""Conversions: recorded once per `external_id`; the first of a referred user qualifies the
referral (once: a conditional UPDATE) and rewards both sides (`Rewards`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from core.infra import clock
from core.infra.db import database, execute, insert_new
from core.infra.events import Events
from core.jobs.queue import JobQueue
from core.program import counters
from core.program.errors import (
    ExternalIdConflict,
)
from core.program.items import (
    REFERRAL_QUALIFIED_MESSAGE,
    REWARD_COLUMNS,
    Conversion,
    Reward,
    exact_amount,
    live_user_id,
    read_subject,
    reward_of,
    tell_referrer,
)
from core.program.rewards import Rewards
from core.program.tables import conversions, rewards
from core.referrals.tables import APPROVED, REJECTED, referrals

_QUALIFY = (
    sa.update(referrals)
    .where(
        referrals.c.id == sa.bindparam("referral_id"),
        referrals.c.qualified_at.is_(None),
        referrals.c.status != REJECTED,
    )
    .values(qualified_at=sa.bindparam("now"))
    .returning(referrals.c.referrer_id, referrals.c.status)
)


class _SentBefore(Exception):
    """A conversion's `external_id` is taken: what this transaction did rolls back."""


class Conversions:
    def __init__(self, *, jobs: JobQueue, events: Events, rewards: Rewards) -> None:
        self.jobs = jobs
        self.events = events
        self.rewards = rewards

    # -- conversions ----------------------------------------------------------------------

    async def convert(
        self,
        *,
        user_id: int | None,
        email: str | None,
        event: str,
        external_id: str,
        amount: Decimal | None,
        currency: str | None,
    ) -> tuple[Conversion, bool]:
        """Record a conversion once per `external_id`; the first of a referred user qualifies
        the referral. Returns it and whether this call created it. The same `external_id`
        with another user, event, amount or currency is refused (`external_id_conflict`)."""
        target = await live_user_id(user_id=user_id, email=email)
        currency = currency.upper() if currency else None
        now = clock.utcnow()
        made = granted = None
        try:
            async with database.transaction(), database.connection() as connection:
                # Qualify first (this locks the referral), then record the conversion with
                # the outcome; a conversion sent before rolls the qualification back.
                qualified = (
                    await execute(connection, _QUALIFY, {"referral_id": target, "now": now})
                ).first()
                made = next(
                    iter(
                        await insert_new(
                            connection,
                            conversions,
                            [
                                {
                                    "user_id": target,
                                    "event": event,
                                    "external_id": external_id,
                                    "amount": amount,
                                    "currency": currency,
                                    "created_at": now,
                                    "referral_qualified": qualified is not None,
                                }
                            ],
                            unique=("external_id",),
                            returning=("id", "created_at"),
                        )
                    ),
                    None,
                )
                if made is None:
                    raise _SentBefore()
                if qualified is not None:
                    granted = await self._qualified(
                        connection, qualified, referral_id=target, conversion_id=made.id, now=now
                    )
        except _SentBefore:
            pass
        if made is None:  # sent before (or at this moment, and that one won)
            conversion = await self._conversion(external_id)
            stored = (conversion.user_id, conversion.event, conversion.amount, conversion.currency)
            if stored != (target, event, amount, currency):
                raise ExternalIdConflict()
            return conversion, False
        created = Conversion(
            id=made.id,
            user_id=target,
            event=event,
            external_id=external_id,
            amount=exact_amount(amount),
            currency=currency,
            created_at=made.created_at,
            referral_qualified=qualified is not None,
            rewards=granted or [],
        )
        return created, True

    async def _conversion(self, external_id: str) -> Conversion:
        async with database.connection() as connection:
            row = (
                await execute(
                    connection,
                    sa.select(conversions).where(conversions.c.external_id == external_id),
                )
            ).one()
            granted = (
                await execute(
                    connection,
                    sa.select(*REWARD_COLUMNS)
                    .where(rewards.c.conversion_id == row.id)
                    .order_by(rewards.c.id),
                )
            ).all()
        return Conversion(
            id=row.id,
            user_id=row.user_id,
            event=row.event,
            external_id=row.external_id,
            amount=exact_amount(row.amount),
            currency=row.currency,
            created_at=row.created_at,
            referral_qualified=bool(row.referral_qualified),
            rewards=[reward_of(reward) for reward in granted],
        )

    async def _qualified(
        self,
        connection: Any,
        qualified: Any,
        *,
        referral_id: int,
        conversion_id: int,
        now: dt.datetime,
    ) -> list[Reward]:
        """What qualifying a referral (once, by `_QUALIFY`) brings: its counters, its event,
        its rewards now (or when approved) and the referrer's message. Returns the rewards."""
        counters.referrer(qualified.referrer_id, qualified=1)
        counters.program(counters.day_of(now), qualified=1)
        subject = await read_subject(connection, referral_id)
        item = subject.item
        await self.events.emit("referral.qualified", item)
        granted: list[Reward] = []
        if qualified.status == APPROVED:
            granted = await self.rewards.grant(connection, subject, conversion_id=conversion_id)
        await tell_referrer(
            self.jobs,
            subject,
            REFERRAL_QUALIFIED_MESSAGE,
            referral_id=item.id,
            referral_name=item.full_name,
            points=sum(r.points for r in granted if r.user_id == item.referrer_id),
            held=qualified.status != APPROVED,
        )
        return granted
