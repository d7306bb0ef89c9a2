"""Review: whether a referral is held at sign-up (and the sign-in network it compares), the
queue of held referrals, an operator's decision (once), and blocking a user."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import sqlalchemy as sa
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS

from core.campaigns.rules import ReviewRules
from core.campaigns.service import Campaign, Campaigns
from core.infra import clock
from core.infra.db import database, execute, in_transaction, is_valid_id
from core.infra.errors import InvalidInput
from core.infra.events import Events
from core.infra.pagination import newest_first
from core.jobs.queue import JobQueue
from core.operators.service import Operator, OperatorService
from core.program import counters
from core.program.errors import (
    AlreadyReviewed,
    CannotBlockOperator,
    ReferralNotFound,
)
from core.program.items import (
    ITEMS,
    REFERRAL_REVIEWED_MESSAGE,
    ReferralItem,
    ReferralList,
    item_of,
    read_subject,
    tell_referrer,
)
from core.program.rewards import Rewards
from core.program.tables import conversions
from core.referrals.service import ReferralService
from core.referrals.tables import APPROVED, PENDING_REVIEW, REJECTED, STATUSES, referrals
from core.telegram.joins import request_decided
from core.users.errors import UserNotFound
from core.users.models import ACCOUNT_COLUMNS, Account, User

DISPOSABLE_EMAIL = "disposable_email"
SAME_NETWORK = "same_network_as_referrer"
SIGNUP_BURST = "signup_burst"

_users = User.ormar_config.table


def network_of(address: str | None) -> str | None:
    """The network a client address belongs to: its /24 (IPv4) or /64 (IPv6); None for
    loopback. The rate limits already give IPv6 clients as their /64."""
    if not address:
        return None
    try:
        if "/" in address:
            network = ipaddress.ip_network(address, strict=False)
        else:
            ip = ipaddress.ip_address(address)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            network = ipaddress.ip_network((ip, 24 if ip.version == 4 else 64), strict=False)
    except ValueError:
        return None
    if network.network_address.is_loopback or network.network_address.is_unspecified:
        # The machine itself (a local client, or a proxy not listed as trusted): it says
        # nothing about who is behind it.
        return None
    if network.version == 6 and network.prefixlen < 64:
        return None
    if network.version == 6:
        network = network.supernet(new_prefix=64)
    return str(network)


def is_disposable(email: str | None) -> bool:
    domain = (email or "").rpartition("@")[2].lower()
    parts = domain.split(".")
    # A subdomain of a throwaway domain is one too.
    return any(".".join(parts[n:]) in DISPOSABLE_DOMAINS for n in range(len(parts) - 1))


class Review:
    def __init__(
        self,
        *,
        jobs: JobQueue,
        events: Events,
        operators: OperatorService,
        referrals: ReferralService,
        rewards: Rewards,
        campaigns: Campaigns,
    ) -> None:
        self.campaigns = campaigns
        self.jobs = jobs
        self.events = events
        self.operators = operators
        self.referrals = referrals
        self.rewards = rewards

    # -- sign-up and sign-in (inside the caller's transaction) ----------------------------

    async def signed_up(
        self,
        *,
        user: User,
        referrer_id: int | None,
        code: str | None,
        campaign: Campaign | None = None,
        client_address: str | None = None,
    ) -> ReferralItem | None:
        """Count the sign-up; for a referral, decide by its campaign's review rules whether it
        is held, and store it in that campaign with its reasons. Returns the referral (None
        without a referrer)."""
        in_transaction()
        now = user.created_at
        day = counters.day_of(now)
        async with database.connection() as connection:
            counters.program(day, signups=1, referred=1 if referrer_id else 0)
            if referrer_id is None or code is None or campaign is None:
                return None
            reasons = await self._review_reasons(
                connection,
                user=user,
                referrer_id=referrer_id,
                code=code,
                rules=campaign.rules.review,
                client=client_address,
            )
            status = PENDING_REVIEW if reasons else APPROVED
            await execute(
                connection,
                sa.insert(referrals).values(
                    id=user.id,
                    referrer_id=referrer_id,
                    code=code,
                    campaign_id=campaign.id,
                    status=status,
                    review_reasons=reasons,
                    created_at=now,
                ),
            )
            held = status == PENDING_REVIEW
            counters.campaign(campaign.id, day, signups=1, pending_review=1 if held else 0)
            await counters.referrer_campaign_now(connection, referrer_id, campaign.id, referrals=1)
            counters.referrer(
                referrer_id, approved=0 if held else 1, pending_review=1 if held else 0
            )
            counters.referrer_day(referrer_id, day, referrals=1, approved=0 if held else 1)
            if held:
                counters.program(pending_review=1)
        return ReferralItem(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            referrer_id=referrer_id,
            referral_code=code,
            status=status,
            review_reasons=reasons,
            created_at=now,
        )

    @staticmethod
    async def _review_reasons(
        connection: Any,
        *,
        user: User,
        referrer_id: int,
        code: str,
        rules: ReviewRules,
        client: str | None,
    ) -> list[str]:
        reasons = []
        if rules.disposable_email and is_disposable(user.email):
            reasons.append(DISPOSABLE_EMAIL)
        network = network_of(client) if rules.same_network else None
        if network is not None:
            referrer_network = (
                await execute(
                    connection, sa.select(_users.c.signin_network).where(_users.c.id == referrer_id)
                )
            ).scalar()
            if referrer_network == network:
                reasons.append(SAME_NETWORK)
        # After the claim, which holds the code's row: concurrent sign-ups with this code are
        # counted one after another, so the limit is exact.
        since = user.created_at - dt.timedelta(seconds=rules.burst_seconds)
        earlier = (
            await execute(
                connection,
                sa.select(sa.func.count())
                .select_from(referrals)
                .where(referrals.c.code == code, referrals.c.created_at > since),
            )
        ).scalar_one()
        if earlier >= rules.burst_limit:
            reasons.append(SIGNUP_BURST)
        return reasons

    @staticmethod
    async def signed_in(*, user_id: int, client_address: str | None) -> None:
        """Remember the network of a password sign-in (never the address itself)."""
        network = network_of(client_address)
        if network is None:
            return
        async with database.transaction(), database.connection() as connection:
            await execute(
                connection,
                sa.update(_users)
                .where(_users.c.id == user_id, _users.c.signin_network.is_distinct_from(network))
                .values(signin_network=network),
            )

    # -- review ---------------------------------------------------------------------------

    async def referral_list(
        self,
        *,
        status: str | None,
        limit: int,
        cursor: str | None,
        campaign: Campaign | None = None,
    ) -> ReferralList:
        """Referrals newest first, of one status or all (the review queue: `pending_review`),
        of one campaign or all."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status is one of {', '.join(STATUSES)}.", field="status")
        statement = ITEMS
        if status is not None:
            statement = statement.where(referrals.c.status == status)
        if campaign is not None:
            statement = statement.where(referrals.c.campaign_id == campaign.id)
        rows, next_cursor = await newest_first(
            statement, referrals.c.id, limit=limit, cursor=cursor
        )
        return ReferralList([item_of(row) for row in rows], next_cursor)

    async def next_for_review(self, *, after: int | None = None) -> ReferralItem | None:
        """The oldest referral waiting for review (after `after`, to skip one)."""
        statement = ITEMS.where(referrals.c.status == PENDING_REVIEW)
        if after is not None:
            statement = statement.where(referrals.c.id > after)
        async with database.connection() as connection:
            row = (await execute(connection, statement.order_by(referrals.c.id).limit(1))).first()
        return item_of(row) if row is not None else None

    async def decide(self, *, operator: Operator, referral_id: int, approve: bool) -> ReferralItem:
        """Approve (held rewards are granted) or reject (it never earns) a held referral,
        once: of two decisions at the same moment, one wins and the other is told."""
        if not is_valid_id(referral_id):
            raise ReferralNotFound()
        status = APPROVED if approve else REJECTED
        now = clock.utcnow()
        async with database.transaction(), database.connection() as connection:
            decided = (
                await execute(
                    connection,
                    sa.update(referrals)
                    .where(referrals.c.id == referral_id, referrals.c.status == PENDING_REVIEW)
                    .values(status=status, reviewed_at=now)
                    .returning(
                        referrals.c.referrer_id,
                        referrals.c.created_at,
                        referrals.c.qualified_at,
                        referrals.c.campaign_id,
                    ),
                )
            ).first()
            if decided is None:
                exists = (
                    await execute(
                        connection, sa.select(referrals.c.id).where(referrals.c.id == referral_id)
                    )
                ).first()
                raise AlreadyReviewed() if exists else ReferralNotFound()
            counters.referrer(
                decided.referrer_id,
                pending_review=-1,
                approved=1 if approve else 0,
                rejected=0 if approve else 1,
            )
            if approve:
                counters.referrer_day(
                    decided.referrer_id, counters.day_of(decided.created_at), approved=1
                )
            else:
                counters.campaign(decided.campaign_id, counters.day_of(now), rejected=1)
                if decided.qualified_at is not None:
                    # "Qualified" counts referrals that qualified and were not rejected.
                    counters.qualified(
                        decided.referrer_id,
                        decided.campaign_id,
                        signed_up=decided.created_at,
                        qualified_at=decided.qualified_at,
                        by=-1,
                    )
            counters.program(pending_review=-1)
            counters.campaign(
                decided.campaign_id, counters.day_of(decided.created_at), pending_review=-1
            )
            subject = await read_subject(connection, referral_id)
            item = subject.item
            points = 0
            if approve and decided.qualified_at is not None:
                qualifying = await _qualifying_conversion(connection, referral_id)
                if qualifying is not None:
                    grant = await self.rewards.grant(
                        connection,
                        subject,
                        campaign=await self.campaigns.by_id(decided.campaign_id),
                        conversion_id=qualifying.id,
                        amount=qualifying.amount,
                    )
                    points = sum(r.points for r in grant.rewards if r.user_id == item.referrer_id)
            await self.events.emit("referral.reviewed", item)
            await self.operators.record(
                operator=operator,
                action="referral.approved" if approve else "referral.rejected",
                target=f"referral:{referral_id}",
            )
            await tell_referrer(
                self.jobs,
                subject,
                REFERRAL_REVIEWED_MESSAGE,
                referral_id=item.id,
                referral_name=item.full_name,
                approved=approve,
                points=points,
            )
            # A friend's join request held for this review is let in or declined now.
            await request_decided(connection, self.jobs, referral_id=referral_id, approve=approve)
        return item

    # -- blocked users --------------------------------------------------------------------

    async def set_blocked(self, *, operator: Operator, user_id: int, blocked: bool) -> Account:
        """Block (tokens, sign-in and the user's code stop at once, cache included) or
        unblock (all of it works again). Operators cannot be blocked here: demoting one is
        a command-line act."""
        if not is_valid_id(user_id):
            raise UserNotFound()
        statement = sa.update(_users).where(_users.c.id == user_id)
        if blocked:
            statement = statement.where(_users.c.is_superuser.is_(False))
        statement = statement.values(blocked_at=clock.utcnow() if blocked else None).returning(
            *ACCOUNT_COLUMNS
        )
        async with database.transaction(), database.connection() as connection:
            row = (await execute(connection, statement)).first()
            if row is None:
                exists = (
                    await execute(connection, sa.select(_users.c.id).where(_users.c.id == user_id))
                ).first()
                raise CannotBlockOperator() if exists else UserNotFound()
            await self.operators.record(
                operator=operator,
                action="user.blocked" if blocked else "user.unblocked",
                target=f"user:{user_id}",
            )
        account = Account(*row)
        await self.referrals.views.forget_owner(account)
        return account


async def _qualifying_conversion(connection: Any, referral_id: int) -> Any:
    """The conversion that qualified this referral (its latest, not refunded): what its
    rewards, granted at approval, are for."""
    return (
        await execute(
            connection,
            sa.select(conversions.c.id, conversions.c.amount)
            .where(
                conversions.c.user_id == referral_id,
                conversions.c.referral_qualified == sa.true(),
                conversions.c.refunded_at.is_(None),
            )
            .order_by(conversions.c.id.desc())
            .limit(1),
        )
    ).first()
