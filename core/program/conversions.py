"""Conversions: recorded once per `external_id`; the first of a referred user that its
campaign's rules accept qualifies the referral (once: a conditional UPDATE) and rewards it
(`Rewards`). A refund takes back what is still in hold and, when nothing of the qualification
is left, undoes it."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from core.campaigns.service import Campaign, Campaigns
from core.infra import clock
from core.infra.db import database, execute, execute_built, insert_new
from core.infra.events import Events
from core.jobs.queue import JobQueue
from core.program import counters
from core.program.errors import ConversionNotFound, ExternalIdConflict
from core.program.items import (
    QUALIFIED,
    REFERRAL_QUALIFIED_MESSAGE,
    REWARDS,
    Conversion,
    Refund,
    Reward,
    Subject,
    exact_amount,
    find_subject,
    live_user_id,
    reward_of,
    tell_referrer,
)
from core.program.rewards import Rewards, count_qualification
from core.program.tables import AVAILABLE, REVOKED, conversions, rewards
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
    def __init__(
        self, *, jobs: JobQueue, events: Events, rewards: Rewards, campaigns: Campaigns
    ) -> None:
        self.jobs = jobs
        self.events = events
        self.rewards = rewards
        self.campaigns = campaigns

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
        """Record a conversion once per `external_id`; the first of a referred user that its
        campaign's rules accept qualifies the referral. Returns it and whether this call
        created it. The same `external_id` with another user, event, amount or currency is
        refused (`external_id_conflict`)."""
        target = await live_user_id(user_id=user_id, email=email)
        currency = currency.upper() if currency else None
        now = clock.utcnow()
        made = qualified = None
        granted: list[Reward] = []
        capped = False
        try:
            async with database.transaction(), database.connection() as connection:
                subject = await find_subject(connection, target)
                campaign = None
                if (
                    subject is not None
                    and subject.qualified_at is None
                    and subject.item.status != REJECTED
                ):  # the campaign's rules only when they may qualify it (read with it)
                    campaign = self.campaigns.of_row(subject.campaign_row)
                if (
                    subject is not None
                    and campaign is not None
                    and _may_qualify(subject, campaign, event=event, amount=amount, now=now)
                ):
                    # Qualify first (this locks the referral), then record the conversion
                    # with the outcome; a conversion sent before rolls the qualification back.
                    qualified = (
                        await execute_built(
                            connection, _QUALIFY, {"referral_id": target, "now": now}
                        )
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
                    assert subject is not None
                    assert campaign is not None
                    granted, capped = await self._qualified(
                        connection,
                        qualified,
                        subject,
                        campaign,
                        conversion_id=made.id,
                        amount=amount,
                        now=now,
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
            rewards=granted,
            capped=capped,
        )
        return created, True

    async def refund(self, *, external_id: str, reason: str | None) -> Refund:
        """Take back what this conversion granted that is still in hold (`revoked`); what is
        available already stays (`kept`: the hold is the refund window). When nothing of
        its qualification is left, the referral is no longer qualified. Once: refunding again
        answers the same."""
        now = clock.utcnow()
        async with database.transaction(), database.connection() as connection:
            row = (
                await execute(
                    connection,
                    sa.update(conversions)
                    .where(
                        conversions.c.external_id == external_id,
                        conversions.c.refunded_at.is_(None),
                    )
                    .values(refunded_at=now, refund_reason=reason)
                    .returning(
                        conversions.c.id, conversions.c.user_id, conversions.c.referral_qualified
                    ),
                )
            ).first()
            if row is None:
                if await self._find(connection, external_id) is None:
                    raise ConversionNotFound()
            else:
                await self._refunded(connection, row, now=now)
                conversion = await self._find(connection, external_id)
                assert conversion is not None
                await self.events.emit("conversion.refunded", conversion)
        conversion = await self._conversion(external_id)
        return Refund(
            conversion=conversion,
            revoked=[reward for reward in conversion.rewards if reward.status == REVOKED],
            kept=[reward for reward in conversion.rewards if reward.status == AVAILABLE],
        )

    async def _refunded(self, connection: Any, row: Any, *, now: dt.datetime) -> None:
        locked = None
        if row.referral_qualified:
            # The referral first: an approval racing this refund runs wholly before or after.
            locked = (
                await execute(
                    connection,
                    sa.update(referrals)
                    .where(referrals.c.id == row.user_id)
                    .values(qualified_at=referrals.c.qualified_at)
                    .returning(
                        referrals.c.referrer_id,
                        referrals.c.status,
                        referrals.c.campaign_id,
                        referrals.c.created_at,
                        referrals.c.qualified_at,
                        referrals.c.rewarded_at,
                    ),
                )
            ).first()
        await self.rewards.revoke(connection, conversion_id=row.id)
        kept = (
            await execute(
                connection,
                sa.select(rewards.c.id)
                .where(rewards.c.conversion_id == row.id, rewards.c.status == AVAILABLE)
                .limit(1),
            )
        ).first()
        if locked is None or locked.qualified_at is None or kept is not None:
            return
        # Nothing of the qualification is left: the referral may qualify again.
        await execute(
            connection,
            sa.update(referrals)
            .where(referrals.c.id == row.user_id)
            .values(qualified_at=None, rewarded_at=None),
        )
        if locked.status != REJECTED:  # a rejection took it out of these counts already
            counters.qualified(
                locked.referrer_id,
                locked.campaign_id,
                signed_up=locked.created_at,
                qualified_at=locked.qualified_at,
                by=-1,
            )
        if locked.rewarded_at is not None:
            counters.campaign(locked.campaign_id, counters.day_of(locked.rewarded_at), rewarded=-1)
        if locked.status == APPROVED:  # its grant counted it towards the milestones
            await count_qualification(connection, locked.referrer_id, locked.campaign_id, -1)

    async def _conversion(self, external_id: str) -> Conversion:
        async with database.connection() as connection:
            conversion = await self._find(connection, external_id)
        assert conversion is not None, "a conversion the caller found"
        return conversion

    @staticmethod
    async def _find(connection: Any, external_id: str) -> Conversion | None:
        row = (
            await execute(
                connection,
                sa.select(conversions).where(conversions.c.external_id == external_id),
            )
        ).first()
        if row is None:
            return None
        granted = (
            await execute(
                connection, REWARDS.where(rewards.c.conversion_id == row.id).order_by(rewards.c.id)
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
            capped=bool(row.capped),
            refunded_at=row.refunded_at,
        )

    async def _qualified(
        self,
        connection: Any,
        qualified: Any,
        subject: Subject,
        campaign: Campaign,
        *,
        conversion_id: int,
        amount: Decimal | None,
        now: dt.datetime,
    ) -> tuple[list[Reward], bool]:
        """What qualifying a referral (once, by `_QUALIFY`) brings: its counters, its event,
        its rewards now (or when approved) and the referrer's message."""
        item = subject.item
        counters.qualified(
            qualified.referrer_id, campaign.id, signed_up=item.created_at, qualified_at=now
        )
        await self.events.emit("referral.qualified", replace(item, qualification=QUALIFIED))
        granted: list[Reward] = []
        capped = False
        if qualified.status == APPROVED:
            grant = await self.rewards.grant(
                connection, subject, campaign=campaign, conversion_id=conversion_id, amount=amount
            )
            granted, capped = grant.rewards, grant.capped
        await tell_referrer(
            self.jobs,
            subject,
            REFERRAL_QUALIFIED_MESSAGE,
            referral_id=item.id,
            referral_name=item.full_name,
            points=sum(r.points for r in granted if r.user_id == item.referrer_id),
            held=qualified.status != APPROVED,
            pending=bool(granted) and campaign.rules.hold_days > 0,
        )
        return granted, capped


def _may_qualify(
    subject: Subject, campaign: Campaign, *, event: str, amount: Decimal | None, now: dt.datetime
) -> bool:
    """Whether this conversion may qualify the referral: not qualified yet nor rejected, an
    event and amount its campaign's rules accept, inside the credit window."""
    if subject.qualified_at is not None or subject.item.status == REJECTED:
        return False
    rules = campaign.rules
    if not rules.qualifies(event, amount):
        return False
    window = rules.credit_window_days
    return window is None or now - subject.item.created_at <= dt.timedelta(days=window)
