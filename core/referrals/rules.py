"""What makes a code valid, active and usable: each rule spelled once, in Python and in SQL
side by side, with the reason a refusal gives."""

from __future__ import annotations

import datetime as dt
import re
import secrets

import sqlalchemy as sa

from core.campaigns.tables import campaigns
from core.infra.db import Read
from core.infra.errors import DomainError
from core.referrals.errors import (
    ReferralCodeDeleted,
    ReferralCodeExhausted,
    ReferralCodeExpired,
    ReferralCodeInvalid,
)
from core.referrals.models import ReferralCode
from core.users.models import User

CODE_RE = re.compile(r"[A-Za-z0-9_-]{4,32}")
RESERVED_PREFIX = "link_"  # the bot's account-linking payload
_GENERATED_BYTES = 9  # 12 url-safe characters, 72 bits of randomness
_codes = ReferralCode.ormar_config.table
_users = User.ormar_config.table


def is_valid_code(value: str) -> bool:
    return CODE_RE.fullmatch(value) is not None


def generate_code() -> str:
    while True:
        value = secrets.token_urlsafe(_GENERATED_BYTES)
        if not value.startswith(RESERVED_PREFIX):
            return value


def is_active(code: ReferralCode, now: dt.datetime) -> bool:
    """Open, not expired, uses left: `active_clauses` in SQL."""
    return (
        code.closed_at is None
        and code.expires_at > now
        and (code.max_uses is None or code.uses < code.max_uses)
    )


def active_clauses(
    now: sa.ColumnElement[dt.datetime] | dt.datetime,
) -> tuple[sa.ColumnElement[bool], ...]:
    """`is_active` as a WHERE clause on `referral_codes`."""
    return (
        _codes.c.closed_at.is_(None),
        _codes.c.expires_at > now,
        sa.or_(_codes.c.max_uses.is_(None), _codes.c.uses < _codes.c.max_uses),
    )


def ended_clauses(now: dt.datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """Still open, but no longer active (expired or used up): a code to retire."""
    return (_codes.c.closed_at.is_(None), sa.not_(sa.and_(*active_clauses(now))))


# A code that works: active, and its owner not blocked (a blocked owner's code works nowhere,
# and is refused as expired: the contract's `referral_code_expired`).
OWNER_USABLE = _users.c.blocked_at.is_(None)


def refusal(code: ReferralCode | None, now: dt.datetime) -> DomainError:
    """Why a code cannot be used for a sign-up."""
    if code is None:
        return ReferralCodeInvalid()
    if code.max_uses is not None and code.uses >= code.max_uses:
        return ReferralCodeExhausted()
    if code.closed_at is not None and code.closed_at < code.expires_at:
        # Only the owner closes a code before its expiry (retiring happens after it).
        return ReferralCodeDeleted()
    return ReferralCodeExpired()


# A usable code with its owner and campaign, by value: the public view's read and the
# link-open count's.
LIVE_CODE = Read(
    sa.select(
        _codes.c.expires_at,
        _users.c.id,
        _users.c.full_name,
        _codes.c.campaign_id,
        campaigns.c.key,
    )
    .select_from(
        _codes.join(_users, _codes.c.owner_id == _users.c.id).join(
            campaigns, campaigns.c.id == _codes.c.campaign_id
        )
    )
    .where(
        _codes.c.code == sa.bindparam("code"),
        OWNER_USABLE,
        *active_clauses(sa.bindparam("now", type_=_codes.c.expires_at.type)),
    )
)
