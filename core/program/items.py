"""What the program's parts show and share: a referral as operators see it, a reward, a
conversion, and the read of a referral with what its rewards and messages need."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from core.campaigns.service import CAMPAIGN_COLUMNS
from core.campaigns.tables import campaigns
from core.infra import clock
from core.infra.db import Read, execute_built, is_valid_id
from core.infra.emails import stored_spelling
from core.jobs.queue import JobQueue
from core.program.tables import AMOUNT_PLACES, rewards
from core.referrals.tables import referrals
from core.telegram.service import TelegramService
from core.users.errors import UserNotFound
from core.users.models import User

# A referral's qualification, as operators see it.
PENDING = "pending"
QUALIFIED = "qualified"
EXPIRED = "expired"
LEFT = "left"  # a friend who joined a campaign's chat left it before qualifying

REFERRAL_QUALIFIED = "referral_qualified"
REFERRED_SIGNUP_BONUS = "referred_signup_bonus"
MILESTONE = "milestone"
ADJUSTMENT = "adjustment"

# Chat messages (rendered by the bot).
REFERRAL_QUALIFIED_MESSAGE = "referral_qualified"
REFERRAL_REVIEWED_MESSAGE = "referral_reviewed"
REWARD_AVAILABLE_MESSAGE = "reward_available"

_users = User.ormar_config.table


@dataclass(frozen=True, slots=True)
class Reward:
    id: int
    user_id: int
    points: int
    reason: str
    status: str
    referral_id: int | None
    conversion_id: int | None
    campaign: str
    note: str | None
    created_at: dt.datetime
    available_at: dt.datetime


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
    qualification: str = "pending"  # PENDING, QUALIFIED, EXPIRED or LEFT


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
    capped: bool = False
    refunded_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RewardPage:
    balance: int  # available: what may be spent
    pending: int  # in hold
    items: list[Reward]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Refund:
    conversion: Conversion
    revoked: list[Reward]
    kept: list[Reward]


@dataclass(frozen=True, slots=True)
class ReferralList:
    items: list[ReferralItem]
    next_cursor: str | None


# A reward's own columns (what an INSERT or UPDATE returns); REWARDS reads them with the
# campaign's key.
REWARD_COLUMNS = (
    rewards.c.id,
    rewards.c.user_id,
    rewards.c.points,
    rewards.c.reason,
    rewards.c.status,
    rewards.c.referral_id,
    rewards.c.conversion_id,
    rewards.c.campaign_id,
    rewards.c.note,
    rewards.c.created_at,
    rewards.c.available_at,
)
REWARDS = sa.select(*REWARD_COLUMNS, campaigns.c.key.label("campaign")).select_from(
    rewards.join(campaigns, campaigns.c.id == rewards.c.campaign_id)
)
ITEM_COLUMNS = (
    referrals.c.id,
    _users.c.email,
    _users.c.full_name,
    referrals.c.referrer_id,
    referrals.c.code.label("referral_code"),
    referrals.c.status,
    referrals.c.review_reasons,
    referrals.c.created_at,
    # What its `qualification` is told by (`item_from`).
    referrals.c.qualified_at.label("item_qualified_at"),
    referrals.c.left_at.label("item_left_at"),
    campaigns.c.rules.label("item_campaign_rules"),
)
ITEMS = sa.select(*ITEM_COLUMNS).select_from(
    referrals.join(_users, _users.c.id == referrals.c.id).join(
        campaigns, campaigns.c.id == referrals.c.campaign_id
    )
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


# A referral with what its rewards and messages need: whether each side may earn (neither
# blocked nor erased) and whether the referrer has a chat to be told in.
_referrer = _users.alias("referrer")


def _earns(user: Any) -> Any:
    return sa.and_(user.c.blocked_at.is_(None), user.c.erased_at.is_(None))


_SUBJECT = (
    sa.select(
        *ITEM_COLUMNS,
        _earns(_users).label("earns"),
        _earns(_referrer).label("referrer_earns"),
        _referrer.c.telegram_id.label("referrer_chat"),
        referrals.c.campaign_id,
        referrals.c.qualified_at,
        *(column.label(f"campaign_row_{column.key}") for column in CAMPAIGN_COLUMNS),
    )
    .select_from(
        referrals.join(_users, _users.c.id == referrals.c.id)
        .join(_referrer, _referrer.c.id == referrals.c.referrer_id)
        .join(campaigns, campaigns.c.id == referrals.c.campaign_id)
    )
    .where(referrals.c.id == sa.bindparam("referral_id"))
)


@dataclass(frozen=True, slots=True)
class Subject:
    item: ReferralItem
    earns: bool
    referrer_earns: bool
    referrer_chat: bool
    campaign_id: int
    qualified_at: dt.datetime | None
    campaign_row: tuple[Any, ...]  # its campaign's row (CAMPAIGN_COLUMNS): `Campaigns.of_row`


def exact_amount(amount: Any) -> Decimal | None:
    """A stored amount as the exact decimal it was given as (SQLite hands back a double)."""
    if amount is None:
        return None
    return Decimal(str(amount)).quantize(Decimal(1).scaleb(-AMOUNT_PLACES)).normalize()


def reward_of(row: Any, campaign: str | None = None) -> Reward:
    """A reward from its row: read with its campaign's key (REWARDS), or told it (a row an
    INSERT or UPDATE returned)."""
    values = dict(row._mapping)
    values.pop("campaign_id")
    if campaign is not None:
        values["campaign"] = campaign
    return Reward(**values)


def item_of(row: Any) -> ReferralItem:
    return item_from(dict(row._mapping))


def item_from(values: dict[str, Any]) -> ReferralItem:
    values["review_reasons"] = list(values["review_reasons"] or [])
    qualified_at, rules = values.pop("item_qualified_at"), values.pop("item_campaign_rules")
    left_at = values.pop("item_left_at")
    values["qualification"] = (
        LEFT
        if left_at is not None and qualified_at is None
        else qualification_of(values["created_at"], qualified_at, rules)
    )
    return ReferralItem(**values)


def qualification_of(signed_up: dt.datetime, qualified_at: dt.datetime | None, rules: Any) -> str:
    """`qualified`; `expired` once its campaign's credit window has passed without it (later
    conversions qualify nothing); else `pending`."""
    if qualified_at is not None:
        return QUALIFIED
    stored = json.loads(rules) if isinstance(rules, str) else (rules or {})
    window = stored.get("credit_window_days")
    if window and clock.utcnow() - signed_up > dt.timedelta(days=int(window)):
        return EXPIRED
    return PENDING


async def read_subject(connection: Any, referral_id: int) -> Subject:
    subject = await find_subject(connection, referral_id)
    assert subject is not None, "a referral the caller found"
    return subject


async def find_subject(connection: Any, referral_id: int) -> Subject | None:
    """The referral of this referred user with what its rewards need (None: not referred)."""
    row = (await execute_built(connection, _SUBJECT, {"referral_id": referral_id})).first()
    if row is None:
        return None
    values = dict(row._mapping)
    earns, referrer_earns = bool(values.pop("earns")), bool(values.pop("referrer_earns"))
    chat = values.pop("referrer_chat") is not None
    campaign_id, qualified_at = values.pop("campaign_id"), values.pop("qualified_at")
    campaign = tuple(values.pop(f"campaign_row_{column.key}") for column in CAMPAIGN_COLUMNS)
    return Subject(
        item_from(values), earns, referrer_earns, chat, campaign_id, qualified_at, campaign
    )


async def tell_referrer(jobs: JobQueue, subject: Subject, message: str, **values: Any) -> None:
    if subject.referrer_chat:
        await TelegramService.notify(
            jobs=jobs, recipient_id=subject.item.referrer_id, message=message, **values
        )


async def live_user_id(*, user_id: int | None, email: str | None) -> int:
    """The live account a conversion or an adjustment names, by id or by the email in the
    spelling sign-up stored; what is no email matches no one."""
    if user_id is not None:
        found = await _LIVE_BY_ID.first(user_id=user_id) if is_valid_id(user_id) else None
    else:
        stored = stored_spelling(email)
        found = await _LIVE_BY_EMAIL.first(email=stored) if stored else None
    if found is None:
        raise UserNotFound()
    return int(found[0])
