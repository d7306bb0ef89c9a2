from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any, ForwardRef, Protocol

import ormar
import sqlalchemy as sa

from core.infra import clock
from core.infra.db import UTCDateTime, base_config

UserRef = ForwardRef("User")


class User(ormar.Model):
    """A person: registered through the API (email + password), the bot (telegram_id), or both."""

    ormar_config = base_config.copy(
        tablename="users",
        constraints=[
            # Keyset pages of one referrer's referrals, newest first.
            ormar.IndexColumns("referrer_id", "created_at", "id", name="ix_users_referrer_created"),
        ],
    )

    id: int = ormar.Integer(primary_key=True)
    email: str | None = ormar.String(max_length=320, nullable=True, unique=True)
    password_hash: str | None = ormar.String(max_length=255, nullable=True)
    full_name: str | None = ormar.String(max_length=100, nullable=True)
    referrer: User | None = ormar.ForeignKey(
        UserRef,
        name="referrer_id",
        nullable=True,
        ondelete=ormar.ReferentialAction.SET_NULL,
        related_name="referrals",
    )
    # The code value used at sign-up; codes are never reused, so the value is a stable key.
    referral_code: str | None = ormar.String(max_length=32, nullable=True)
    telegram_id: int | None = ormar.BigInteger(nullable=True, unique=True)
    telegram_username: str | None = ormar.String(max_length=64, nullable=True)
    language_code: str | None = ormar.String(max_length=16, nullable=True)
    is_superuser: bool = ormar.Boolean(default=False, server_default=sa.false(), nullable=False)
    # Set by the link mailed at sign-up (when mail is configured).
    email_verified: bool = ormar.Boolean(default=False, server_default=sa.false(), nullable=False)
    # Carried by every access token; raised to end them all at once (password change, erasure).
    token_version: int = ormar.Integer(default=0, server_default=sa.text("0"), nullable=False)
    # How many joined with this user's codes: kept by each sign-up's own transaction.
    referral_count: int = ormar.Integer(default=0, server_default=sa.text("0"), nullable=False)
    # Erased at the user's request: the row stays (referrers' counts), everything personal goes.
    erased_at: dt.datetime | None = UTCDateTime(nullable=True)
    # Blocked by an operator: tokens, sign-in and the user's code stop working until unblocked.
    blocked_at: dt.datetime | None = UTCDateTime(nullable=True)
    # The network (a /24 or /64, never the address) of the last password sign-in: a referral
    # signing up from it is held for review.
    signin_network: str | None = ormar.String(max_length=64, nullable=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)

    # Email verification (Hunter): the verdict at registration, when a verifier is configured.
    email_status: str | None = ormar.String(max_length=32, nullable=True)
    # Enrichment (Clearbit): pending → done | not_found | failed.
    enrichment_status: str | None = ormar.String(max_length=16, nullable=True, index=True)
    enrichment_attempts: int = ormar.Integer(default=0, server_default=sa.text("0"), nullable=False)
    enriched_at: dt.datetime | None = UTCDateTime(nullable=True)
    company: str | None = ormar.String(max_length=200, nullable=True)
    job_title: str | None = ormar.String(max_length=200, nullable=True)
    location: str | None = ormar.String(max_length=200, nullable=True)
    avatar_url: str | None = ormar.String(max_length=500, nullable=True)


User.update_forward_refs()

# Case-insensitive uniqueness as a database invariant, whatever a caller forgets to lower-case.
sa.Index("uq_users_email_lower", sa.func.lower(User.ormar_config.table.c.email), unique=True)


class Person(Protocol):
    """What the services read of a user they are handed: an `Account` (the API) or the ORM
    `User` (the bot) alike."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str | None: ...
    @property
    def telegram_id(self) -> int | None: ...
    @property
    def password_hash(self) -> str | None: ...


class AccountToken(ormar.Model):
    """A one-time token of a user, as its SHA-256 (core/users/tokens.py issues and spends it)."""

    ormar_config = base_config.copy(
        tablename="account_tokens",
        constraints=[ormar.IndexColumns("user_id", name="ix_account_tokens_user_id")],
    )

    id: int = ormar.Integer(primary_key=True)
    user: User = ormar.ForeignKey(
        User,
        name="user_id",
        nullable=False,
        ondelete=ormar.ReferentialAction.CASCADE,
        related_name="account_tokens",
    )
    purpose: str = ormar.String(max_length=32)
    token_hash: str = ormar.String(max_length=64, unique=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    expires_at: dt.datetime = UTCDateTime(nullable=False)
    used_at: dt.datetime | None = UTCDateTime(nullable=True)


@dataclass(frozen=True, slots=True)
class Account:
    """A user's row as one SELECT of `ACCOUNT_COLUMNS` gives it, in that order.

    What every authenticated request starts from: building the ORM model (relations, field
    validation) cost more than the query itself.
    """

    id: int
    email: str | None
    password_hash: str | None
    full_name: str | None
    referrer_id: int | None
    telegram_id: int | None
    created_at: dt.datetime
    is_superuser: bool
    email_verified: bool
    token_version: int
    erased_at: dt.datetime | None
    company: str | None
    job_title: str | None
    location: str | None
    avatar_url: str | None
    enrichment_status: str | None
    blocked_at: dt.datetime | None

    @classmethod
    def of(cls, user: User) -> Account:
        """The account of an ORM user (one just created or updated through ormar)."""
        values = {f.name: getattr(user, f.name) for f in fields(cls) if f.name != "referrer_id"}
        return cls(**values, referrer_id=user.referrer.id if user.referrer else None)


ACCOUNT_COLUMNS = tuple(User.ormar_config.table.c[f.name] for f in fields(Account))


def user_data(user: Account) -> dict[str, Any]:
    """`User`, as `GET /users/me` shows it: the `data` of `user.*` events."""
    return {
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "referrer_id": user.referrer_id,
        "telegram_id": user.telegram_id,
        "created_at": user.created_at,
        "is_superuser": user.is_superuser,
        "email_verified": user.email_verified,
        "company": user.company,
        "job_title": user.job_title,
        "location": user.location,
        "avatar_url": user.avatar_url,
        "enrichment_status": user.enrichment_status,
        "blocked": user.blocked_at is not None,
    }
