"""The referral program's changes: review at sign-up, conversions, rewards, decisions, blocks
(its numbers are read by `stats`).

Every change here runs in one transaction with the counters it moves (`counters`), the events
it causes (webhooks) and the chat messages it queues, and what must happen once is made so by
the schema: a conversion per `external_id`, a qualification per referral (a conditional
UPDATE), each referral reward once (`uq_rewards_referral_reason`), a decision once (an UPDATE
of a referral still `pending_review`), a balance never below zero (a CHECK).
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from core.infra import clock
from core.infra.db import Read, database, in_transaction, increment, is_valid_id
from core.infra.emails import stored_spelling
from core.infra.errors import InvalidInput
from core.infra.pagination import newest_first
from core.infra.settings import ProgramSettings
from core.jobs.queue import JobQueue
from core.operators.service import Operator, OperatorService
from core.program import counters
from core.program.errors import (
    AlreadyReviewed,
    CannotBlockOperator,
    ExternalIdConflict,
    InsufficientBalance,
    ReferralNotFound,
)
from core.program.tables import (
    AMOUNT_PLACES,
    APPROVED,
    PENDING_REVIEW,
    REJECTED,
    STATUSES,
    conversions,
    referrals,
    reward_balances,
    rewards,
)
from core.referrals.service import ReferralService
from core.telegram.service import TelegramService
from core.users.errors import UserNotFound
from core.users.models import ACCOUNT_COLUMNS, Account, User
from core.webhooks.events import Events

REFERRAL_QUALIFIED = "referral_qualified"
REFERRED_SIGNUP_BONUS = "referred_signup_bonus"
ADJUSTMENT = "adjustment"

DISPOSABLE_EMAIL = "disposable_email"
SAME_NETWORK = "same_network_as_referrer"
SIGNUP_BURST = "signup_burst"

# Chat messages to the referrer (rendered by the bot).
REFERRAL_QUALIFIED_MESSAGE = "referral_qualified"
REFERRAL_REVIEWED_MESSAGE = "referral_reviewed"

_users = User.ormar_config.table


@dataclass(frozen=True, slots=True)
class Reward:
    id: int
    user_id: int
    points: int
    reason: str
    referral_id: int | None
    note: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ReferralItem:
    """A referral as operators (and webhooks) see it."""

    id: int
    email: str | None
    full_name: str | None
    referrer_id: int
    referral_code: str
    status: str
    review_reasons: list[str]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Conversion:
    id: int
    user_id: int
    event: str
    external_id: str
    amount: Decimal | None
    currency: str | None
    created_at: dt.datetime
    referral_qualified: bool
    rewards: list[Reward]


@dataclass(frozen=True, slots=True)
class RewardPage:
    balance: int
    items: list[Reward]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ReferralList:
    items: list[ReferralItem]
    next_cursor: str | None


_REWARD_COLUMNS = (
    rewards.c.id,
    rewards.c.user_id,
    rewards.c.points,
    rewards.c.reason,
    rewards.c.referral_id,
    rewards.c.note,
    rewards.c.created_at,
)
_ITEM_COLUMNS = (
    referrals.c.id,
    _users.c.email,
    _users.c.full_name,
    referrals.c.referrer_id,
    referrals.c.code.label("referral_code"),
    referrals.c.status,
    referrals.c.review_reasons,
    referrals.c.created_at,
)
_ITEMS = sa.select(*_ITEM_COLUMNS).select_from(
    referrals.join(_users, _users.c.id == referrals.c.id)
)


# The conversion path: statements built once (building one costs about what running it does).
_LIVE_BY_ID = Read(
    sa.select(_users.c.id).where(
        _users.c.id == sa.bindparam("user_id"), _users.c.erased_at.is_(None)
    )
)
_LIVE_BY_EMAIL = Read(
    sa.select(_users.c.id).where(
        _users.c.email == sa.bindparam("email"), _users.c.erased_at.is_(None)
    )
)


@functools.cache
def _conversion_insert(dialect: str) -> Any:
    insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
    names = (
        "user_id",
        "event",
        "external_id",
        "amount",
        "currency",
        "created_at",
        "referral_qualified",
    )
    return (
        insert(conversions)
        .values({name: sa.bindparam(name) for name in names})
        .on_conflict_do_nothing(index_elements=["external_id"])
        .returning(conversions.c.id, conversions.c.created_at)
    )


@functools.cache
def _reward_insert(dialect: str) -> Any:
    insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return (
        insert(rewards)
        .on_conflict_do_nothing(
            index_elements=["referral_id", "reason"],
            index_where=rewards.c.referral_id.is_not(None),
        )
        .returning(*_REWARD_COLUMNS)
    )


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


# A referral with what its rewards and messages need: whether each side may earn (neither
# blocked nor erased) and whether the referrer has a chat to be told in.
_referrer = _users.alias("referrer")


def _earns(user: Any) -> Any:
    return sa.and_(user.c.blocked_at.is_(None), user.c.erased_at.is_(None))


_SUBJECT = (
    sa.select(
        *_ITEM_COLUMNS,
        _earns(_users).label("earns"),
        _earns(_referrer).label("referrer_earns"),
        _referrer.c.telegram_id.label("referrer_chat"),
    )
    .select_from(
        referrals.join(_users, _users.c.id == referrals.c.id).join(
            _referrer, _referrer.c.id == referrals.c.referrer_id
        )
    )
    .where(referrals.c.id == sa.bindparam("referral_id"))
)


@dataclass(frozen=True, slots=True)
class _Subject:
    item: ReferralItem
    earns: bool
    referrer_earns: bool
    referrer_chat: bool


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


def _exact(amount: Any) -> Decimal | None:
    """A stored amount as the exact decimal it was given as (SQLite hands back a double)."""
    if amount is None:
        return None
    return Decimal(str(amount)).quantize(Decimal(1).scaleb(-AMOUNT_PLACES)).normalize()


def _reward(row: Any) -> Reward:
    return Reward(**row._mapping)


def _item(row: Any) -> ReferralItem:
    return _item_of(dict(row._mapping))


def _item_of(values: dict[str, Any]) -> ReferralItem:
    values["review_reasons"] = list(values["review_reasons"] or [])
    return ReferralItem(**values)


class ProgramService:
    def __init__(
        self,
        *,
        settings: ProgramSettings,
        jobs: JobQueue,
        events: Events,
        operators: OperatorService,
        referrals: ReferralService,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.events = events
        self.operators = operators
        self.referrals = referrals

    # -- sign-up and sign-in (inside the caller's transaction) ----------------------------

    async def signed_up(
        self,
        *,
        user: User,
        referrer_id: int | None,
        code: str | None,
        client_address: str | None = None,
    ) -> ReferralItem | None:
        """Count the sign-up; for a referral, decide whether it is held for review and store
        it with its reasons. Returns the referral (None without a referrer)."""
        in_transaction()
        now = user.created_at
        day = counters.day_of(now)
        async with database.connection() as connection:
            counters.program(day, signups=1, referred=1 if referrer_id else 0)
            if referrer_id is None or code is None:
                return None
            reasons = await self._review_reasons(
                connection, user=user, referrer_id=referrer_id, code=code, client=client_address
            )
            status = PENDING_REVIEW if reasons else APPROVED
            await connection.execute(
                sa.insert(referrals).values(
                    id=user.id,
                    referrer_id=referrer_id,
                    code=code,
                    status=status,
                    review_reasons=reasons,
                    created_at=now,
                )
            )
            held = status == PENDING_REVIEW
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

    async def _review_reasons(
        self, connection: Any, *, user: User, referrer_id: int, code: str, client: str | None
    ) -> list[str]:
        reasons = []
        if is_disposable(user.email):
            reasons.append(DISPOSABLE_EMAIL)
        network = network_of(client)
        if network is not None:
            referrer_network = (
                await connection.execute(
                    sa.select(_users.c.signin_network).where(_users.c.id == referrer_id)
                )
            ).scalar()
            if referrer_network == network:
                reasons.append(SAME_NETWORK)
        # After the claim, which holds the code's row: concurrent sign-ups with this code are
        # counted one after another, so the limit is exact.
        since = user.created_at - dt.timedelta(seconds=self.settings.review_burst_seconds)
        earlier = (
            await connection.execute(
                sa.select(sa.func.count())
                .select_from(referrals)
                .where(referrals.c.code == code, referrals.c.created_at > since)
            )
        ).scalar_one()
        if earlier >= self.settings.review_burst_limit:
            reasons.append(SIGNUP_BURST)
        return reasons

    @staticmethod
    async def signed_in(*, user_id: int, client_address: str | None) -> None:
        """Remember the network of a password sign-in (never the address itself)."""
        network = network_of(client_address)
        if network is None:
            return
        async with database.transaction(), database.connection() as connection:
            await connection.execute(
                sa.update(_users)
                .where(_users.c.id == user_id, _users.c.signin_network.is_distinct_from(network))
                .values(signin_network=network)
            )

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
        target = await self._user_id(user_id=user_id, email=email)
        currency = currency.upper() if currency else None
        now = clock.utcnow()
        made = granted = None
        try:
            async with database.transaction(), database.connection() as connection:
                # Qualify first (this locks the referral), then record the conversion with
                # the outcome; a conversion sent before rolls the qualification back.
                qualified = (
                    await connection.execute(_QUALIFY, {"referral_id": target, "now": now})
                ).first()
                made = (
                    await connection.execute(
                        _conversion_insert(database.engine.dialect.name),
                        {
                            "user_id": target,
                            "event": event,
                            "external_id": external_id,
                            "amount": amount,
                            "currency": currency,
                            "created_at": now,
                            "referral_qualified": qualified is not None,
                        },
                    )
                ).first()
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
            amount=_exact(amount),
            currency=currency,
            created_at=made.created_at,
            referral_qualified=qualified is not None,
            rewards=granted or [],
        )
        return created, True

    async def _user_id(self, *, user_id: int | None, email: str | None) -> int:
        """The live account a conversion (or an adjustment) names, by id or by the email in
        the spelling sign-up stored; what is no email matches no one."""
        if user_id is not None:
            found = await _LIVE_BY_ID.first(user_id=user_id) if is_valid_id(user_id) else None
        else:
            stored = stored_spelling(email)
            found = await _LIVE_BY_EMAIL.first(email=stored) if stored else None
        if found is None:
            raise UserNotFound()
        return int(found[0])

    async def _conversion(self, external_id: str) -> Conversion:
        async with database.connection() as connection:
            row = (
                await connection.execute(
                    sa.select(conversions).where(conversions.c.external_id == external_id)
                )
            ).one()
            granted = (
                await connection.execute(
                    sa.select(*_REWARD_COLUMNS)
                    .where(rewards.c.conversion_id == row.id)
                    .order_by(rewards.c.id)
                )
            ).all()
        return Conversion(
            id=row.id,
            user_id=row.user_id,
            event=row.event,
            external_id=row.external_id,
            amount=_exact(row.amount),
            currency=row.currency,
            created_at=row.created_at,
            referral_qualified=bool(row.referral_qualified),
            rewards=[_reward(reward) for reward in granted],
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
        subject = await self._subject(connection, referral_id)
        item = subject.item
        await self.events.emit("referral.qualified", item)
        granted: list[Reward] = []
        if qualified.status == APPROVED:
            granted = await self._grant(connection, subject, conversion_id=conversion_id)
        await self._tell_referrer(
            subject,
            REFERRAL_QUALIFIED_MESSAGE,
            referral_id=item.id,
            referral_name=item.full_name,
            points=sum(r.points for r in granted if r.user_id == item.referrer_id),
            held=qualified.status != APPROVED,
        )
        return granted

    async def _grant(
        self, connection: Any, subject: _Subject, *, conversion_id: int | None
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
        rows = (await connection.execute(_reward_insert(database.engine.dialect.name), due)).all()
        granted = sorted((_reward(row) for row in rows), key=lambda reward: reward.id)
        for reward in granted:
            await self._credit(connection, reward.user_id, reward.points)
            await self.events.emit("reward.granted", reward)
        return granted

    @staticmethod
    async def _credit(connection: Any, user_id: int, points: int) -> None:
        """Move a balance by `points` (the CHECK refuses a balance below zero)."""
        if points > 0:
            increment(reward_balances, {"user_id": user_id}, balance=points)
        else:  # an upsert would check its would-be new row (negative) first
            moved = (
                await connection.execute(
                    sa.update(reward_balances)
                    .where(reward_balances.c.user_id == user_id)
                    .values(balance=reward_balances.c.balance + points)
                )
            ).rowcount
            if not moved:
                raise InsufficientBalance()  # nothing to take from
        counters.program(rewards_points=points)

    # -- rewards --------------------------------------------------------------------------

    async def rewards(self, *, user_id: int, limit: int, cursor: str | None) -> RewardPage:
        if not is_valid_id(user_id):
            raise UserNotFound()
        statement = sa.select(*_REWARD_COLUMNS).where(rewards.c.user_id == user_id)
        rows, next_cursor = await newest_first(statement, rewards.c.id, limit=limit, cursor=cursor)
        async with database.connection() as connection:
            balance = await _balance(connection, user_id)
        return RewardPage(balance, [_reward(row) for row in rows], next_cursor)

    async def adjust(self, *, operator: Operator, user_id: int, points: int, note: str) -> Reward:
        """A redemption, refund or correction: a ledger row; the balance never below zero."""
        await self._user_id(user_id=user_id, email=None)
        try:
            async with database.transaction(), database.connection() as connection:
                row = (
                    await connection.execute(
                        sa.insert(rewards)
                        .values(
                            user_id=user_id,
                            points=points,
                            reason=ADJUSTMENT,
                            note=note,
                            created_at=clock.utcnow(),
                        )
                        .returning(*_REWARD_COLUMNS)
                    )
                ).one()
                await self._credit(connection, user_id, points)
                reward = _reward(row)
                await self.events.emit("reward.granted", reward)
                await self.operators.record(
                    operator=operator,
                    action="reward.adjusted",
                    target=f"user:{user_id} ({points:+d})",
                )
        except IntegrityError:
            raise InsufficientBalance() from None
        return reward

    # -- review ---------------------------------------------------------------------------

    async def referral_list(
        self, *, status: str | None, limit: int, cursor: str | None
    ) -> ReferralList:
        """Referrals newest first, of one status or all (the review queue: `pending_review`)."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status is one of {', '.join(STATUSES)}.", field="status")
        statement = _ITEMS
        if status is not None:
            statement = statement.where(referrals.c.status == status)
        rows, next_cursor = await newest_first(
            statement, referrals.c.id, limit=limit, cursor=cursor
        )
        return ReferralList([_item(row) for row in rows], next_cursor)

    async def next_for_review(self, *, after: int | None = None) -> ReferralItem | None:
        """The oldest referral waiting for review (after `after`, to skip one)."""
        statement = _ITEMS.where(referrals.c.status == PENDING_REVIEW)
        if after is not None:
            statement = statement.where(referrals.c.id > after)
        async with database.connection() as connection:
            row = (await connection.execute(statement.order_by(referrals.c.id).limit(1))).first()
        return _item(row) if row is not None else None

    async def decide(self, *, operator: Operator, referral_id: int, approve: bool) -> ReferralItem:
        """Approve (held rewards are granted) or reject (it never earns) a held referral,
        once: of two decisions at the same moment, one wins and the other is told."""
        if not is_valid_id(referral_id):
            raise ReferralNotFound()
        status = APPROVED if approve else REJECTED
        now = clock.utcnow()
        async with database.transaction(), database.connection() as connection:
            decided = (
                await connection.execute(
                    sa.update(referrals)
                    .where(referrals.c.id == referral_id, referrals.c.status == PENDING_REVIEW)
                    .values(status=status, reviewed_at=now)
                    .returning(
                        referrals.c.referrer_id, referrals.c.created_at, referrals.c.qualified_at
                    )
                )
            ).first()
            if decided is None:
                exists = (
                    await connection.execute(
                        sa.select(referrals.c.id).where(referrals.c.id == referral_id)
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
            elif decided.qualified_at is not None:
                # "Qualified" counts referrals that qualified and were not rejected.
                counters.referrer(decided.referrer_id, qualified=-1)
                counters.program(counters.day_of(decided.qualified_at), qualified=-1)
            counters.program(pending_review=-1)
            subject = await self._subject(connection, referral_id)
            item = subject.item
            points = 0
            if approve and decided.qualified_at is not None:
                granted = await self._grant(connection, subject, conversion_id=None)
                points = sum(r.points for r in granted if r.user_id == item.referrer_id)
            await self.events.emit("referral.reviewed", item)
            await self.operators.record(
                operator=operator,
                action="referral.approved" if approve else "referral.rejected",
                target=f"referral:{referral_id}",
            )
            await self._tell_referrer(
                subject,
                REFERRAL_REVIEWED_MESSAGE,
                referral_id=item.id,
                referral_name=item.full_name,
                approved=approve,
                points=points,
            )
        return item

    async def _subject(self, connection: Any, referral_id: int) -> _Subject:
        row = (await connection.execute(_SUBJECT, {"referral_id": referral_id})).one()
        values = dict(row._mapping)
        earns, referrer_earns = bool(values.pop("earns")), bool(values.pop("referrer_earns"))
        chat = values.pop("referrer_chat") is not None
        return _Subject(_item_of(values), earns, referrer_earns, chat)

    async def _tell_referrer(self, subject: _Subject, message: str, **values: Any) -> None:
        if subject.referrer_chat:
            await TelegramService.notify(
                jobs=self.jobs, recipient_id=subject.item.referrer_id, message=message, **values
            )

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
            row = (await connection.execute(statement)).first()
            if row is None:
                exists = (
                    await connection.execute(sa.select(_users.c.id).where(_users.c.id == user_id))
                ).first()
                raise CannotBlockOperator() if exists else UserNotFound()
            await self.operators.record(
                operator=operator,
                action="user.blocked" if blocked else "user.unblocked",
                target=f"user:{user_id}",
            )
        account = Account(*row)
        await self.referrals.forget_owner(account)
        return account


async def _balance(connection: Any, user_id: int) -> int:
    balance = (
        await connection.execute(
            sa.select(reward_balances.c.balance).where(reward_balances.c.user_id == user_id)
        )
    ).scalar()
    return int(balance or 0)
